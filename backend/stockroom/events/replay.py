"""Writing the retained outbox to the event store again: `replay` (`stockroom events replay`)
and the in-process store's rebuild at start (`rebuild_in_process_store`), both read-only on the
outbox (a replay into MongoDB only marks what it wrote as held durably), so they never race the
relays (`stockroom.events.relay`). `retention_cutoff` is EVENT_RETENTION_DAYS as a date, shared
with the relay's expiry.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReplaceOne
from sqlalchemy import Row, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.events import rollups
from stockroom.events.documents import to_document
from stockroom.events.models import OutboxEvent
from stockroom.events.store import EventStore
from stockroom.types import utcnow

Sessionmaker = async_sessionmaker[AsyncSession]


# After a replay into MongoDB: the delivered rows it wrote are now held durably (pending rows
# are left to the relay, which may hold them locked).
_MARK_STORED_DURABLY = text(
    "UPDATE outbox_events SET stored_durably = true "
    "WHERE id = ANY(CAST(:ids AS uuid[])) AND delivered_at IS NOT NULL AND NOT stored_durably"
)


def retention_cutoff(retention_days: int, now: datetime | None = None) -> datetime | None:
    """Events that occurred before this are past EVENT_RETENTION_DAYS (None: kept forever)."""
    if retention_days <= 0:
        return None
    return (now or utcnow()) - timedelta(days=retention_days)


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    events: int
    inserted: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.events - self.inserted - self.updated


async def count_retained(
    sessionmaker: Sessionmaker, *, since: datetime | None = None, delivered_only: bool = False
) -> int:
    statement = select(OutboxEvent.id)
    if since is not None:
        statement = statement.where(OutboxEvent.occurred_at >= since)
    if delivered_only:
        statement = statement.where(OutboxEvent.delivered_at.is_not(None))
    async with sessionmaker() as session, session.begin():
        counted = await session.scalar(select(func.count()).select_from(statement.subquery()))
    return int(counted or 0)


async def _retained_batches(
    sessionmaker: Sessionmaker,
    *,
    since: datetime | None,
    delivered_only: bool,
    batch_size: int,
) -> AsyncIterator[list[Row[Any]]]:
    """Retained outbox rows in id order (about time order: ids are UUIDv7), a page at a time
    (keyset pagination on the primary key, one short read-only transaction per page). The store
    keys events by id, so the order of writing does not matter."""
    after: uuid.UUID | None = None
    while True:
        statement = (
            select(OutboxEvent.id, OutboxEvent.delivered_at, OutboxEvent.payload)
            .order_by(OutboxEvent.id)
            .limit(batch_size)
        )
        if since is not None:
            statement = statement.where(OutboxEvent.occurred_at >= since)
        if delivered_only:
            statement = statement.where(OutboxEvent.delivered_at.is_not(None))
        if after is not None:
            statement = statement.where(OutboxEvent.id > after)
        async with sessionmaker() as session, session.begin():
            rows = list((await session.execute(statement)).all())
        if not rows:
            return
        yield rows
        after = rows[-1].id


async def replay(
    sessionmaker: Sessionmaker,
    store: EventStore,
    *,
    since: datetime | None = None,
    delivered_only: bool = False,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> ReplayOutcome:
    """Write every outbox event PostgreSQL holds (since `since`, and within
    EVENT_RETENTION_DAYS) to the store again, then recompute the rollups over them.

    Idempotent: an event already stored identically is left unchanged. Events are only read
    (and, for MongoDB, their delivered rows marked as held durably, which lets the outbox prune
    them), so a replay never races the relays. Raises when the store fails (run it again).
    """
    since = _latest(since, retention_cutoff(store.retention_days))
    events = inserted = updated = 0
    batches = _retained_batches(
        sessionmaker, since=since, delivered_only=delivered_only, batch_size=batch_size
    )
    async for rows in batches:
        requests = [
            ReplaceOne({"_id": d["_id"]}, d, upsert=True)
            for d in (to_document(row.payload) for row in rows)
        ]
        result = await store.collection.bulk_write(requests, ordered=True)
        if not store.in_process:
            async with sessionmaker() as session, session.begin():
                await session.execute(_MARK_STORED_DURABLY, {"ids": [row.id for row in rows]})
        events += len(rows)
        inserted += int(result.upserted_count)
        updated += int(result.modified_count)
        if progress is not None:
            progress(len(rows))
    await rollups.rebuild(sessionmaker, store.collection, utcnow(), since=since)
    return ReplayOutcome(events, inserted, updated)


def _latest(lhs: datetime | None, rhs: datetime | None) -> datetime | None:
    if lhs is None:
        return rhs
    return lhs if rhs is None else max(lhs, rhs)


async def rebuild_in_process_store(sessionmaker: Sessionmaker, store: EventStore) -> int:
    """Fill a fresh, empty in-process store with every delivered event the outbox holds (within
    `EVENT_RETENTION_DAYS` when it is set), and its rollups. Inserts, not upserts: about 7 times
    faster in mongomock, and the store is empty. The rollups are folded from the same documents
    as they go in, not read back."""
    since = retention_cutoff(store.retention_days)
    events = 0
    builder = rollups.RollupBuilder()
    batches = _retained_batches(sessionmaker, since=since, delivered_only=True, batch_size=2000)
    async for rows in batches:
        documents = [to_document(row.payload) for row in rows]
        builder.add(documents)
        await store.collection.insert_many(documents)
        events += len(rows)
    await builder.write(store.collection, utcnow())
    return events
