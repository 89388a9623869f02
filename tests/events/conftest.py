"""Event pipeline fixtures: event stores (in-process, or a real MongoDB under the `mongo` marker),
engines on fresh databases, and helpers that record events through the real path."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymongo.errors import ServerSelectionTimeoutError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.context import Actor, Context
from stockroom.db.engine import create_engine, create_sessionmaker
from stockroom.events import record
from stockroom.events.store import EventStore, in_process_event_store, mongodb_event_store

NO_MONGODB = (
    "MONGODB_URL is not set: tests marked `mongo` run the event pipeline against a real MongoDB "
    "only when MONGODB_URL points at one"
)

Sessionmaker = async_sessionmaker[AsyncSession]


def mongodb_url_or_skip() -> str:
    url = os.environ.get("MONGODB_URL")
    if not url:
        pytest.skip(NO_MONGODB)
    return url


@pytest.fixture(params=["in_process", pytest.param("mongodb", marks=pytest.mark.mongo)])
async def event_store(request: pytest.FixtureRequest) -> AsyncIterator[EventStore]:
    """An empty, initialized event store: mongomock-motor, or a throwaway database on a real
    MongoDB when the test runs with the `mongo` marker and MONGODB_URL is set."""
    if request.param == "in_process":
        store = in_process_event_store()
        assert await store.initialize()
        yield store
        store.close()
        return
    url = mongodb_url_or_skip()
    name = f"stockroom_test_{uuid.uuid4().hex[:12]}"
    store = mongodb_event_store(url, name)
    assert await store.initialize(), "the MongoDB at MONGODB_URL is not reachable"
    try:
        yield store
    finally:
        await store.client.drop_database(name)
        store.close()


def durable_stand_in_store(retention_days: int = 0) -> EventStore:
    """An event store the relay treats as MongoDB (durable: the outbox may prune what it holds),
    kept in mongomock so that it runs without a server."""
    store = in_process_event_store(retention_days)
    return EventStore(store.client, store.database, in_process=False, retention_days=retention_days)


@pytest.fixture
async def fresh_sessionmaker(fresh_database: str) -> AsyncIterator[Sessionmaker]:
    """Sessions on a database of the test's own: real commits, many connections."""
    engine = create_engine(fresh_database, pool_size=5, max_overflow=5)
    yield create_sessionmaker(engine)
    await engine.dispose()


ALICE = Actor(id=uuid.UUID("01890000-0000-7000-8000-000000000001"), email="alice@example.com")


def request_context(actor: Actor | None = ALICE, request_id: str = "req-1") -> Context:
    return Context(
        actor=actor,
        request_id=request_id,
        ip="203.0.113.7",
        user_agent="pytest/8",
        method="PATCH",
        path="/api/v1/widgets/{widget_id}",
    )


@dataclass
class Recorded:
    id: uuid.UUID
    entity: tuple[str, str] | None
    payload: dict[str, Any] = field(default_factory=dict)


async def record_committed(
    sessionmaker: Sessionmaker,
    entities: Sequence[uuid.UUID | None],
    type_: str = "widget.updated",
    ctx: Context | None = None,
    **kwargs: Any,
) -> list[uuid.UUID]:
    """One committed transaction recording one event per entity (None: an event without one)."""
    ids = []
    async with sessionmaker() as session, session.begin():
        for entity_id in entities:
            entity = ("widget", entity_id) if entity_id else None
            ids.append(record(session, type_, ctx or request_context(), entity=entity, **kwargs))
    return ids


async def outbox_rows(sessionmaker: Sessionmaker) -> list[Any]:
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            text(
                "SELECT id, type, occurred_at, payload, attempts, next_attempt_at, delivered_at, "
                "last_error, entity_key FROM outbox_events ORDER BY occurred_at, id"
            )
        )
        return list(result.all())


class StoreSwitch:
    """A fault injector: while `down`, every operation on the store fails like an unreachable
    server. Wraps the store's collection and database in place."""

    def __init__(self, store: EventStore) -> None:
        self.down = False
        self.arrivals: list[str] = []  # `_id`s in the order the store accepted them
        self.store = store
        store.collection = _FlakyCollection(store.collection, self)
        store.database = _FlakyDatabase(store.database, self)

    def check(self) -> None:
        if self.down:
            raise ServerSelectionTimeoutError("event store unreachable (injected fault)")


class _FlakyCollection:
    def __init__(self, inner: Any, switch: StoreSwitch) -> None:
        self._inner = inner
        self._switch = switch

    async def bulk_write(self, requests: list[Any], **kwargs: Any) -> Any:
        self._switch.check()
        result = await self._inner.bulk_write(requests, **kwargs)
        self._switch.arrivals.extend(r._filter["_id"] for r in requests)
        return result

    def __getattr__(self, name: str) -> Any:
        self._switch.check()
        return getattr(self._inner, name)


class _FlakyDatabase:
    def __init__(self, inner: Any, switch: StoreSwitch) -> None:
        self._inner = inner
        self._switch = switch

    async def command(self, *args: Any, **kwargs: Any) -> Any:
        self._switch.check()
        return await self._inner.command(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
