"""The pipeline inside the app: writes through the API survive an event store outage, readiness
and metrics report it, and the relay loop delivers on its own, within a second of a commit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
import structlog.testing
from fastapi import FastAPI, Request
from sqlalchemy import text

from stockroom.context import Context
from stockroom.db.session import Session
from stockroom.events import record
from stockroom.events.relay import deliver_pending
from stockroom.events.store import EventStore
from stockroom.main import create_app
from tests.conftest import http_client, make_settings
from tests.events.conftest import StoreSwitch, mongodb_url_or_skip


def add_widget_route(app: FastAPI) -> None:
    """A test-only write use case: one transaction, one outbox event."""

    @app.post("/test/widgets/{widget_id}", status_code=201)
    async def touch_widget(
        widget_id: uuid.UUID, request: Request, session: Session
    ) -> dict[str, str]:
        ctx = Context(request_id="req", method="POST", path="/test/widgets/{widget_id}")
        async with session.begin():
            event_id = record(session, "widget.updated", ctx, entity=("widget", widget_id))
        return {"event_id": str(event_id)}


@pytest.fixture(params=["in_process", pytest.param("mongodb", marks=pytest.mark.mongo)])
def store_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "in_process":
        return {"mongodb_url": None}
    return {
        "mongodb_url": mongodb_url_or_skip(),
        "mongodb_database": f"stockroom_test_{uuid.uuid4().hex[:12]}",
    }


@pytest.fixture
async def pipeline_app(
    fresh_database: str, store_overrides: dict[str, Any]
) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(fresh_database, **store_overrides))
    add_widget_route(app)
    async with app.router.lifespan_context(app):
        yield app
        if store_overrides["mongodb_url"]:
            await app.state.event_store.client.drop_database(store_overrides["mongodb_database"])


async def test_writes_go_on_while_the_event_store_is_down_and_every_event_arrives_once(
    pipeline_app: FastAPI,
) -> None:
    store: EventStore = pipeline_app.state.event_store
    sessionmaker = pipeline_app.state.sessionmaker
    switch = StoreSwitch(store)
    widgets = [uuid.uuid4() for _ in range(3)]
    recorded: dict[str, list[str]] = defaultdict(list)

    async def write(client: httpx.AsyncClient, rounds: int) -> None:
        for _ in range(rounds):
            for widget in widgets:
                response = await client.post(f"/test/widgets/{widget}")
                assert response.status_code == 201
                recorded[str(widget)].append(response.json()["event_id"])

    async with http_client(pipeline_app) as client:
        switch.down = True
        await write(client, 4)
        assert await deliver_pending(sessionmaker, store) == 0
        await write(client, 3)
        assert await deliver_pending(sessionmaker, store) == 0

        ready = (await client.get("/api/v1/health/ready")).json()
        assert ready["postgres"] == "ok"
        assert ready["mongodb"] == "degraded"
        assert ready["outbox_backlog"] == 21
        assert ready["outbox_oldest_age_s"] > 0
        metrics = (await client.get("/metrics")).text
        assert "stockroom_outbox_backlog 21.0" in metrics
        assert "stockroom_outbox_delivery_failures_total" in metrics

        switch.down = False
        assert (await client.get("/api/v1/health/ready")).json()["mongodb"] == "ok"
        now = datetime.now(UTC)
        for step in range(1, 30):
            await deliver_pending(sessionmaker, store, now=now + timedelta(seconds=step))

        ready = (await client.get("/api/v1/health/ready")).json()
        assert (ready["mongodb"], ready["outbox_backlog"], ready["outbox_oldest_age_s"]) == (
            "ok",
            0,
            0,
        )

    assert len(switch.arrivals) == len(set(switch.arrivals)) == 21
    assert await store.collection.count_documents({}) == 21
    arrived: dict[str, list[str]] = defaultdict(list)
    async for document in store.collection.find({}):
        assert document["type"] == "widget.updated"
    for event_id in switch.arrivals:
        document = await store.collection.find_one({"_id": event_id})
        arrived[document["entity"]["id"]].append(event_id)
    assert arrived == recorded


async def test_the_relay_loop_delivers_within_a_second_of_a_commit(fresh_database: str) -> None:
    settings = make_settings(fresh_database, relay_enabled=True, relay_poll_interval_s=1.0)
    app = create_app(settings)
    add_widget_route(app)
    async with app.router.lifespan_context(app), http_client(app) as client:
        store: EventStore = app.state.event_store

        async def seconds_until_stored(event_id: str) -> float:
            started = time.monotonic()
            while await store.collection.find_one({"_id": event_id}) is None:
                assert time.monotonic() - started < 5, "not delivered"
                await asyncio.sleep(0.01)
            return time.monotonic() - started

        # A commit in this process wakes the relay at once.
        response = await client.post(f"/test/widgets/{uuid.uuid4()}")
        assert await seconds_until_stored(response.json()["event_id"]) < 0.5

        # A commit by another process (raw SQL here, no wake-up) is found by polling.
        await asyncio.sleep(0.2)
        event_id = str(uuid.uuid4())
        async with app.state.sessionmaker() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO outbox_events (id, type, occurred_at, payload) "
                    "VALUES (CAST(:id AS uuid), 'widget.updated', now(), CAST(:payload AS jsonb))"
                ),
                {
                    "id": event_id,
                    "payload": (
                        f'{{"id": "{event_id}", "type": "widget.updated", '
                        f'"occurred_at": "{datetime.now(UTC).isoformat()}", "request": {{}}}}'
                    ),
                },
            )
        assert await seconds_until_stored(event_id) < 1.3


async def test_the_relay_loop_catches_up_after_the_store_comes_back(fresh_database: str) -> None:
    settings = make_settings(fresh_database, relay_enabled=True, relay_poll_interval_s=0.05)
    app = create_app(settings)
    add_widget_route(app)
    async with app.router.lifespan_context(app), http_client(app) as client:
        store: EventStore = app.state.event_store
        switch = StoreSwitch(store)
        switch.down = True
        ids = []
        for _ in range(5):
            response = await client.post(f"/test/widgets/{uuid.uuid4()}")
            assert response.status_code == 201
            ids.append(response.json()["event_id"])
        await asyncio.sleep(0.3)
        assert switch.arrivals == []
        switch.down = False
        started = time.monotonic()
        while len(switch.arrivals) < 5:
            assert time.monotonic() - started < 5, "the backlog was not delivered after recovery"
            await asyncio.sleep(0.05)
        assert sorted(switch.arrivals) == sorted(ids)


async def test_startup_log_says_events_are_in_memory_without_mongodb(fresh_database: str) -> None:
    app = create_app(make_settings(fresh_database, log_level="INFO"))
    with structlog.testing.capture_logs() as logs:
        async with app.router.lifespan_context(app):
            assert app.state.event_store.in_process
    assert sum("events are in memory" in e["event"] for e in logs) == 1
