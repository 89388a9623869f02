"""Delivery from the outbox to the event store: complete, faithful, idempotent, ordered, durable."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import bson
import pytest
from sqlalchemy import text

from stockroom.events.documents import ActivityEvent
from stockroom.events.relay import (
    Relay,
    deliver_pending,
    prune_delivered,
    rebuild_in_process_store,
    replay,
)
from stockroom.events.store import EventStore, in_process_event_store
from stockroom.events.wakeup import wake_relays
from tests.conftest import make_settings
from tests.events.conftest import (
    ALICE,
    Sessionmaker,
    StoreSwitch,
    durable_stand_in_store,
    outbox_rows,
    record_committed,
    request_context,
)

FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)


def ms(when: datetime) -> datetime:
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


async def stored(store: EventStore) -> dict[str, dict[str, Any]]:
    return {doc["_id"]: doc async for doc in store.collection.find({})}


async def record_varied_events(sessionmaker: Sessionmaker) -> list[uuid.UUID]:
    """Events of every shape the recorder produces."""
    ids: list[uuid.UUID] = []
    widget = uuid.uuid4()
    ids += await record_committed(
        sessionmaker,
        [widget],
        type_="widget.updated",
        changes={
            "price": {"old": Decimal("10.50"), "new": Decimal("11.00")},
            "supplier_id": {"old": None, "new": uuid.UUID(int=5)},
        },
        data={
            "quantity": 3,
            "huge": 2**70,
            "ratio": 0.25,
            "at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
            "tags": ["a", "b"],
            "nested": {"deep": [1, {"x": None}]},
        },
    )
    ids += await record_committed(sessionmaker, [None], type_="auth.login_failed", ctx=None)
    anonymous = request_context(actor=None, request_id="req-anon")
    ids += await record_committed(sessionmaker, [None], type_="auth.login_failed", ctx=anonymous)
    for _ in range(3):
        ids += await record_committed(sessionmaker, [uuid.uuid4(), widget, None])
    return ids


async def test_every_recorded_event_arrives_once_field_by_field(
    fresh_sessionmaker: Sessionmaker, event_store: EventStore
) -> None:
    ids = await record_varied_events(fresh_sessionmaker)

    assert await deliver_pending(fresh_sessionmaker, event_store) == len(ids)

    rows = await outbox_rows(fresh_sessionmaker)
    documents = await stored(event_store)
    assert set(documents) == {str(i) for i in ids}
    for row in rows:
        payload = row.payload
        assert row.delivered_at is not None
        assert row.attempts == 1
        document = documents[str(row.id)]
        assert document["_id"] == str(row.id)
        assert document["type"] == row.type
        assert isinstance(document["occurred_at"], datetime)
        assert document["occurred_at"] == ms(row.occurred_at)  # a BSON date holds milliseconds
        assert document["actor"] == payload["actor"]
        assert document["entity"] == payload["entity"]
        assert document["request"] == payload["request"]
        assert document["changes"] == payload["changes"]
        expected_data = dict(payload["data"] or {})
        if "huge" in expected_data:
            expected_data["huge"] = str(2**70)  # beyond BSON's 64-bit integers
        assert document["data"] == (expected_data or None)
        assert ActivityEvent.model_validate(document).id == str(row.id)

    first = documents[str(ids[0])]
    assert first["actor"] == {"id": str(ALICE.id), "email": ALICE.email}
    assert first["changes"] == {
        "price": {"old": "10.50", "new": "11.00"},
        "supplier_id": {"old": None, "new": str(uuid.UUID(int=5))},
    }
    assert first["data"]["at"] == "2025-01-02T03:04:05+00:00"
    assert documents[str(ids[2])]["actor"] is None


async def test_every_document_the_relay_writes_is_valid_bson(
    fresh_sessionmaker: Sessionmaker, event_store: EventStore
) -> None:
    written: list[dict[str, Any]] = []
    inner = event_store.collection

    class Capturing:
        async def bulk_write(self, requests: list[Any], **kwargs: Any) -> Any:
            written.extend(r._doc for r in requests)
            return await inner.bulk_write(requests, **kwargs)

    event_store.collection = Capturing()
    ids = await record_varied_events(fresh_sessionmaker)

    await deliver_pending(fresh_sessionmaker, event_store)

    assert len(written) == len(ids)
    for document in written:
        decoded: dict[str, Any] = bson.decode(
            bson.encode(document), bson.CodecOptions(tz_aware=True)
        )
        assert decoded == document


async def test_delivering_again_leaves_the_same_documents(
    fresh_sessionmaker: Sessionmaker, event_store: EventStore
) -> None:
    ids = await record_varied_events(fresh_sessionmaker)
    await deliver_pending(fresh_sessionmaker, event_store)
    before = await stored(event_store)

    # A relay that died after writing but before marking: the rows are pending again.
    async with fresh_sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE outbox_events SET delivered_at = NULL"))
    assert await deliver_pending(fresh_sessionmaker, event_store) == len(ids)
    outcome = await replay(fresh_sessionmaker, event_store)

    assert await stored(event_store) == before
    assert await event_store.collection.count_documents({}) == len(ids)
    assert (outcome.events, outcome.inserted, outcome.updated) == (len(ids), 0, 0)


async def test_a_relay_killed_between_the_write_and_the_mark_redelivers_without_duplicates(
    fresh_sessionmaker: Sessionmaker, event_store: EventStore
) -> None:
    ids = await record_committed(fresh_sessionmaker, [uuid.uuid4() for _ in range(20)])
    inner = event_store.collection

    class DiesAfterWriting:
        async def bulk_write(self, requests: list[Any], **kwargs: Any) -> Any:
            await inner.bulk_write(requests, **kwargs)
            raise asyncio.CancelledError  # the process is torn down right after the write

    event_store.collection = DiesAfterWriting()
    with pytest.raises(asyncio.CancelledError):
        await deliver_pending(fresh_sessionmaker, event_store)
    assert all(row.delivered_at is None for row in await outbox_rows(fresh_sessionmaker))
    assert await inner.count_documents({}) == len(ids)

    event_store.collection = inner
    assert await deliver_pending(fresh_sessionmaker, event_store) == len(ids)
    assert await inner.count_documents({}) == len(ids)
    assert all(row.delivered_at is not None for row in await outbox_rows(fresh_sessionmaker))


async def test_failed_deliveries_back_off_keep_the_error_and_are_never_dropped(
    fresh_sessionmaker: Sessionmaker, event_store: EventStore
) -> None:
    switch = StoreSwitch(event_store)
    switch.down = True
    ids = await record_committed(fresh_sessionmaker, [uuid.uuid4(), uuid.uuid4()])

    delays = []
    for attempt in range(1, 5):
        assert await deliver_pending(fresh_sessionmaker, event_store, now=FAR_FUTURE) == 0
        rows = await outbox_rows(fresh_sessionmaker)
        assert [row.id for row in rows] == ids
        for row in rows:
            assert row.attempts == attempt
            assert row.delivered_at is None
            assert "ServerSelectionTimeoutError" in row.last_error
        delays.append(max(row.next_attempt_at for row in rows) - datetime.now(UTC))
    # Exponential with jitter in [0.5, 1] of 1 s, 2 s, 4 s, 8 s.
    assert timedelta(seconds=0.3) < delays[0] <= timedelta(seconds=1)
    assert timedelta(seconds=3.8) < delays[3] <= timedelta(seconds=8)

    # Not due yet: the relay leaves them alone rather than hammering the store.
    switch.down = False
    assert await deliver_pending(fresh_sessionmaker, event_store) == 0
    assert await deliver_pending(fresh_sessionmaker, event_store, now=FAR_FUTURE) == 2
    assert set(await stored(event_store)) == {str(i) for i in ids}


async def test_each_entity_s_events_arrive_in_order_through_an_outage(
    fresh_sessionmaker: Sessionmaker, event_store: EventStore
) -> None:
    switch = StoreSwitch(event_store)
    entities = [uuid.uuid4() for _ in range(4)]
    recorded: dict[str, list[str]] = defaultdict(list)

    async def write_round() -> None:
        ids = await record_committed(fresh_sessionmaker, entities)
        for entity, event_id in zip(entities, ids, strict=True):
            recorded[str(entity)].append(str(event_id))

    await write_round()
    await deliver_pending(fresh_sessionmaker, event_store)
    switch.down = True
    for _ in range(3):
        await write_round()
        await deliver_pending(fresh_sessionmaker, event_store)  # fails, rows back off
    switch.down = False
    for _ in range(2):
        await write_round()  # due at once, but queued behind their entity's backed-off events
    assert await deliver_pending(fresh_sessionmaker, event_store) == 0

    # Time passes in steps; backed-off rows come due at jittered moments.
    now = datetime.now(UTC)
    for step in range(1, 40):
        await deliver_pending(fresh_sessionmaker, event_store, now=now + timedelta(seconds=step))

    assert len(switch.arrivals) == len(set(switch.arrivals)) == 4 * 6
    arrived: dict[str, list[str]] = defaultdict(list)
    documents = await stored(event_store)
    for event_id in switch.arrivals:
        arrived[documents[event_id]["entity"]["id"]].append(event_id)
    assert arrived == recorded


async def test_pruning_removes_only_rows_mongodb_holds_delivered_past_the_retention(
    fresh_sessionmaker: Sessionmaker,
) -> None:
    (only_in_memory,) = await record_committed(fresh_sessionmaker, [uuid.uuid4()])
    await deliver_pending(fresh_sessionmaker, in_process_event_store())
    old, recent, pending = await record_committed(fresh_sessionmaker, [uuid.uuid4()] * 3)
    await deliver_pending(fresh_sessionmaker, durable_stand_in_store())
    async with fresh_sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE outbox_events SET delivered_at = now() - interval '31 days' "
                "WHERE id = ANY(:ids)"
            ),
            {"ids": [old, only_in_memory]},
        )
        await session.execute(
            text(
                "UPDATE outbox_events SET delivered_at = NULL, "
                "occurred_at = now() - interval '90 days' WHERE id = :i"
            ),
            {"i": pending},
        )

    assert await prune_delivered(fresh_sessionmaker, 0) == 0
    assert await prune_delivered(fresh_sessionmaker, 30) == 1
    # The row only an in-process store ever held stays: the outbox is its only durable copy.
    remaining = {row.id for row in await outbox_rows(fresh_sessionmaker)}
    assert remaining == {only_in_memory, recent, pending}


async def test_the_in_process_store_is_rebuilt_from_the_retained_outbox(
    fresh_sessionmaker: Sessionmaker,
) -> None:
    first = in_process_event_store()
    delivered = await record_committed(fresh_sessionmaker, [uuid.uuid4(), None])
    await deliver_pending(fresh_sessionmaker, first)
    pending = await record_committed(fresh_sessionmaker, [uuid.uuid4()])
    before = await stored(first)

    restarted = in_process_event_store()  # a new process: the memory is empty
    assert await rebuild_in_process_store(fresh_sessionmaker, restarted) == len(delivered)
    assert await stored(restarted) == before

    assert await deliver_pending(fresh_sessionmaker, restarted) == 1
    assert set(await stored(restarted)) == {str(i) for i in delivered + pending}


async def test_replay_since_a_date_writes_only_later_events(
    fresh_sessionmaker: Sessionmaker, event_store: EventStore
) -> None:
    early = await record_committed(fresh_sessionmaker, [uuid.uuid4()])
    async with fresh_sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE outbox_events SET occurred_at = occurred_at - interval '10 days'")
        )
    late = await record_committed(fresh_sessionmaker, [uuid.uuid4(), uuid.uuid4()])

    outcome = await replay(
        fresh_sessionmaker, event_store, since=datetime.now(UTC) - timedelta(days=1)
    )
    assert (outcome.events, outcome.inserted) == (2, 2)
    assert set(await stored(event_store)) == {str(i) for i in late}
    again = await replay(fresh_sessionmaker, event_store)
    assert (again.events, again.inserted, again.updated, again.unchanged) == (3, 1, 0, 2)
    assert str(early[0]) in await stored(event_store)


async def test_the_in_process_store_is_rebuilt_only_with_events_within_the_retention(
    fresh_sessionmaker: Sessionmaker,
) -> None:
    old, recent = await record_committed(fresh_sessionmaker, [uuid.uuid4(), uuid.uuid4()])
    await deliver_pending(fresh_sessionmaker, in_process_event_store())
    async with fresh_sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE outbox_events SET occurred_at = now() - interval '8 days' WHERE id = :i"),
            {"i": old},
        )

    restarted = in_process_event_store(retention_days=7)
    assert await rebuild_in_process_store(fresh_sessionmaker, restarted) == 1
    assert set(await stored(restarted)) == {str(recent)}


async def test_an_event_the_store_cannot_take_holds_back_only_its_own_entity(
    fresh_sessionmaker: Sessionmaker,
) -> None:
    store = in_process_event_store()
    poisoned, healthy = uuid.uuid4(), uuid.uuid4()
    async with fresh_sessionmaker() as session, session.begin():
        # A row no code path writes: its payload has no event id.
        await session.execute(
            text(
                "INSERT INTO outbox_events (id, type, occurred_at, payload) VALUES "
                "(CAST(:id AS uuid), 'widget.updated', now() - interval '1 second', "
                "CAST(:payload AS jsonb))"
            ),
            {
                "id": str(uuid.uuid4()),
                "payload": json.dumps(
                    {"type": "widget.updated", "entity": {"type": "widget", "id": str(poisoned)}}
                ),
            },
        )
    later_same_entity = await record_committed(fresh_sessionmaker, [poisoned])
    other_entity = await record_committed(fresh_sessionmaker, [healthy, None])

    # The first batch starts with the bad row: it alone backs off, the others are released.
    assert await deliver_pending(fresh_sessionmaker, store) == 0
    assert await deliver_pending(fresh_sessionmaker, store) == 2

    assert set(await stored(store)) == {str(i) for i in other_entity}
    pending = [row for row in await outbox_rows(fresh_sessionmaker) if row.delivered_at is None]
    assert len(pending) == 2
    assert pending[0].attempts == 1
    assert pending[0].last_error.startswith("payload cannot be stored: KeyError")
    assert (pending[1].id, pending[1].attempts) == (later_same_entity[0], 0)


async def test_a_relay_stops_when_cancelled_even_while_wake_ups_keep_arriving(
    fresh_database: str, fresh_sessionmaker: Sessionmaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On Python 3.11 `asyncio.wait_for` loses a cancellation that arrives as its inner wait
    # completes: a relay waiting for wake-ups that way kept running after shutdown asked it to
    # stop. Its rounds are made instant here, so the cancellation lands in that wait.
    async def instant_round(self: Relay) -> None:
        await asyncio.sleep(0)

    monkeypatch.setattr(Relay, "tick", instant_round)
    settings = make_settings(fresh_database, relay_poll_interval_s=0.01)
    relay = Relay(fresh_sessionmaker, in_process_event_store(), settings)
    stop_waking = asyncio.Event()

    async def keep_waking() -> None:
        while not stop_waking.is_set():
            wake_relays()
            await asyncio.sleep(0)

    waker = asyncio.create_task(keep_waking())
    try:
        for _ in range(100):
            running = asyncio.create_task(relay.run())
            await asyncio.sleep(0.002)
            running.cancel()
            done, _ = await asyncio.wait({running}, timeout=1)
            assert running in done, "the relay ignored its cancellation"
    finally:
        stop_waking.set()
        await waker
