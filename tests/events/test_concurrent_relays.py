"""Several relays on one outbox, real PostgreSQL, real commits: every event exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from stockroom.db.engine import create_engine, create_sessionmaker
from stockroom.events.relay import Relay, deliver_pending, outbox_status
from stockroom.events.store import EventStore, in_process_event_store
from tests.conftest import make_settings
from tests.events.conftest import Sessionmaker, outbox_rows, record_committed

ENTITIES = 60
ROUNDS = 8


class RelayView:
    """One relay's handle on the shared store: records which `_id`s this relay wrote, in order,
    and holds its batch a moment so that the relays really overlap."""

    def __init__(self, shared: EventStore, log: list[tuple[str, str]], name: str) -> None:
        self.client, self.database = shared.client, shared.database
        self.in_process, self.initialized = True, True
        self.collection = self
        self._inner, self._log, self._name = shared.collection, log, name

    async def bulk_write(self, requests: list[Any], **kwargs: Any) -> Any:
        await asyncio.sleep(0.005)
        result = await self._inner.bulk_write(requests, **kwargs)
        self._log.extend((self._name, r._filter["_id"]) for r in requests)
        return result

    async def initialize(self) -> bool:
        return True


@pytest.fixture
async def relay_sessionmakers(fresh_database: str) -> AsyncIterator[list[Sessionmaker]]:
    engines = [create_engine(fresh_database, pool_size=2, max_overflow=0) for _ in range(3)]
    yield [create_sessionmaker(engine) for engine in engines]
    for engine in engines:
        await engine.dispose()


async def test_two_relays_deliver_every_event_exactly_once_in_entity_order(
    fresh_database: str, relay_sessionmakers: list[Sessionmaker]
) -> None:
    writer, first, second = relay_sessionmakers
    shared = in_process_event_store()
    arrivals: list[tuple[str, str]] = []
    settings = make_settings(fresh_database, relay_batch_size=20, relay_poll_interval_s=0.02)
    relays = [
        asyncio.create_task(Relay(sm, RelayView(shared, arrivals, name), settings).run())  # type: ignore[arg-type]
        for sm, name in ((first, "first"), (second, "second"))
    ]
    entities = [uuid.uuid4() for _ in range(ENTITIES)]
    recorded: dict[str, list[str]] = defaultdict(list)
    try:
        # Writers commit while both relays run.
        for _ in range(ROUNDS):
            for start in range(0, ENTITIES, 15):
                chunk = entities[start : start + 15]
                ids = await record_committed(writer, chunk)
                for entity, event_id in zip(chunk, ids, strict=True):
                    recorded[str(entity)].append(str(event_id))
            await asyncio.sleep(0.01)
        started = time.monotonic()
        while (await outbox_status(writer)).backlog:
            assert time.monotonic() - started < 30, "the relays did not drain the outbox"
            await asyncio.sleep(0.05)
    finally:
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)

    total = ENTITIES * ROUNDS
    written = Counter(event_id for _, event_id in arrivals)
    assert len(written) == total
    assert set(written.values()) == {1}, "an event was written twice"
    assert await shared.collection.count_documents({}) == total
    by_relay = Counter(name for name, _ in arrivals)
    assert by_relay["first"] > 0
    assert by_relay["second"] > 0

    entity_of = {event_id: entity for entity, ids in recorded.items() for event_id in ids}
    arrived: dict[str, list[str]] = defaultdict(list)
    for _, arrived_id in arrivals:
        arrived[entity_of[arrived_id]].append(arrived_id)
    assert arrived == recorded


async def lock_waiters(sessionmaker: Sessionmaker) -> int:
    # A transaction of its own each time: pg_stat_activity is a snapshot per transaction.
    async with sessionmaker() as session:
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(waiting or 0)


async def test_a_row_locked_by_another_transaction_does_not_hold_up_the_rest(
    fresh_database: str, relay_sessionmakers: list[Sessionmaker]
) -> None:
    writer, relay_sessions, _ = relay_sessionmakers
    store = in_process_event_store()
    ids = await record_committed(writer, [uuid.uuid4() for _ in range(10)])  # 10 entities
    # Another relay (or anyone) holds the oldest pending row, on a connection of its own.
    holder = create_engine(fresh_database, pool_size=1, max_overflow=0)
    try:
        async with holder.connect() as connection, connection.begin():
            locked = await connection.scalar(
                text(
                    "SELECT id FROM outbox_events WHERE delivered_at IS NULL "
                    "ORDER BY occurred_at, id LIMIT 1 FOR UPDATE"
                )
            )
            delivery = asyncio.create_task(deliver_pending(relay_sessions, store))
            # Deterministic, not a stopwatch: the relay either finishes while the lock is held,
            # or PostgreSQL shows its claim waiting for that lock (a claim without SKIP LOCKED).
            waited = False
            while not delivery.done() and not waited:
                waited = await lock_waiters(writer) > 0
                await asyncio.sleep(0.01)
        delivered = await delivery  # the lock is released now: a waiting relay finishes too
    finally:
        await holder.dispose()

    assert not waited, "the relay waited for a row another transaction holds"
    assert locked in ids
    assert delivered == 9
    pending = [row.id for row in await outbox_rows(writer) if row.delivered_at is None]
    assert pending == [locked]
    assert await deliver_pending(relay_sessions, store) == 1  # once released, it goes out too
    assert await store.collection.count_documents({}) == 10
