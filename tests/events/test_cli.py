"""`stockroom events replay` and `stockroom relay`."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from stockroom.cli import app
from stockroom.events import cli as events_cli
from stockroom.events.relay import deliver_pending
from stockroom.events.store import EventStore, in_process_event_store
from stockroom.types import as_utc
from tests.conftest import make_settings
from tests.events.conftest import Sessionmaker, record_committed


async def invoke(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


@pytest.fixture
def mongodb_store(fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> EventStore:
    """The CLI pointed at the fresh database and at a store standing in for MongoDB."""
    settings = make_settings(fresh_database, mongodb_url="mongodb://stand-in")
    shared = in_process_event_store()

    async def open_store(_: object) -> EventStore:
        return EventStore(shared.client, shared.database, in_process=False)

    monkeypatch.setattr(events_cli, "_settings", lambda: settings)
    monkeypatch.setattr(events_cli, "_open_store", open_store)
    return shared


async def test_replay_rewrites_retained_events_and_a_second_replay_changes_nothing(
    mongodb_store: EventStore, fresh_sessionmaker: Sessionmaker
) -> None:
    ids = await record_committed(fresh_sessionmaker, [uuid.uuid4(), None, uuid.uuid4()])
    await deliver_pending(fresh_sessionmaker, in_process_event_store())  # delivered elsewhere

    first = await invoke("events", "replay")
    assert first.exit_code == 0, first.output
    assert "Replaying events" in first.output
    assert "replayed 3 events: 3 new, 0 changed, 0 already up to date" in first.output
    assert await mongodb_store.collection.count_documents({}) == len(ids)

    second = await invoke("events", "replay")
    assert second.exit_code == 0, second.output
    assert "replayed 3 events: 0 new, 0 changed, 3 already up to date" in second.output
    assert await mongodb_store.collection.count_documents({}) == len(ids)


async def test_replay_since_a_future_date_replays_nothing(
    mongodb_store: EventStore, fresh_sessionmaker: Sessionmaker
) -> None:
    await record_committed(fresh_sessionmaker, [uuid.uuid4()])
    result = await invoke("events", "replay", "--since", "2999-01-01")
    assert result.exit_code == 0, result.output
    assert "replayed 0 events" in result.output
    assert await mongodb_store.collection.count_documents({}) == 0


@pytest.mark.parametrize("command", [["relay"], ["events", "replay"]])
async def test_relay_and_replay_explain_that_they_need_mongodb(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_cli, "_settings", lambda: make_settings(None))
    result = await invoke(*command)
    assert result.exit_code == 2
    assert "MONGODB_URL is not set" in result.output


async def test_rebuild_rollups_recomputes_the_buckets_from_the_stored_events(
    mongodb_store: EventStore, fresh_sessionmaker: Sessionmaker
) -> None:
    from stockroom.events import rollups

    ids = await record_committed(fresh_sessionmaker, [uuid.uuid4(), None])
    await invoke("events", "replay")
    hour = rollups.floor_hour(datetime.now(UTC)) - rollups.HOUR
    await mongodb_store.collection.update_many({}, {"$set": {"occurred_at": hour}})
    # A bucket counting what is not there (as if written by an old, buggy relay).
    await mongodb_store.database[rollups.ROLLUPS].insert_one(
        rollups.Tally(events=99, types={"x.y": 99}).to_document("hour", hour - rollups.HOUR)
    )

    result = await invoke("events", "rebuild-rollups")

    assert result.exit_code == 0, result.output
    assert "rollups rebuilt" in result.output
    hours = [
        (d["bucket_start"], d["events"])
        async for d in mongodb_store.database[rollups.ROLLUPS].find({"granularity": "hour"})
    ]
    assert [(as_utc(at), n) for at, n in hours] == [(hour, len(ids))]


async def test_rebuild_rollups_explains_the_in_process_store(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_cli, "_settings", lambda: make_settings(fresh_database))
    result = await invoke("events", "rebuild-rollups")
    assert result.exit_code == 2
    assert "rebuilds it (events and rollups)" in result.output
