"""The outbox relay: delivers committed outbox rows to the event store, exactly once in effect.

One batch is one PostgreSQL transaction:

1. claim up to `batch_size` due, undelivered rows in `(occurred_at, id)` order with
   `FOR UPDATE SKIP LOCKED`, so several relays share the work without waiting on each other;
   a row is held back while an earlier event of the same entity is still pending and not in the
   batch (backed off, or claimed by another relay), so each entity's events reach the store in
   their original order;
2. write them with one ordered bulk upsert keyed by `_id = event id` (redelivery replaces a
   document with itself);
3. recompute the closed rollup buckets the written events fall in (`stockroom.events.rollups`);
4. mark the written rows delivered (and, for MongoDB, stored durably). When the store fails as
   a whole, every claimed row gets `attempts + 1`, `last_error` and an exponential backoff
   with jitter; when it refuses one document, only that row does and the rest of the batch is
   released for the next claim.
   Nothing is ever dropped.

A crash between 2 and 4 rolls the claim back; the rows are delivered again, which is a no-op
for the events and a recompute (not an increment) for the rollups.

Pruning: delivered rows are deleted after OUTBOX_RETENTION_DAYS only once MongoDB holds them
(`stored_durably`). With the in-process store the outbox is the only durable copy and keeps every
event, which the store is rebuilt from at start. EVENT_RETENTION_DAYS is what removes events, in
both modes: the outbox rows, and the in-process store's events, older than it (MongoDB removes
its own with a TTL index).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.events import rollups
from stockroom.events.documents import to_document
from stockroom.events.metrics import (
    DELIVERY_DELAY,
    OUTBOX_BACKLOG,
    OUTBOX_DELIVERED,
    OUTBOX_DELIVERY_FAILURES,
    RELAY_LAG,
)

# Replaying the outbox lives in `replay`; re-exported where tests have always found it.
from stockroom.events.replay import ReplayOutcome as ReplayOutcome
from stockroom.events.replay import count_retained as count_retained
from stockroom.events.replay import rebuild_in_process_store as rebuild_in_process_store
from stockroom.events.replay import replay as replay
from stockroom.events.replay import retention_cutoff
from stockroom.events.store import EventStore
from stockroom.events.wakeup import subscription
from stockroom.settings import Settings
from stockroom.types import utcnow

log = structlog.get_logger("stockroom.relay")

Sessionmaker = async_sessionmaker[AsyncSession]

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
WRITE_TIMEOUT_S = 30.0
PRUNE_EVERY_S = 60.0
GAUGES_EVERY_S = 1.0
FAILURE_LOG_EVERY_S = 60.0

_CLAIM = text(
    """
    WITH candidates AS MATERIALIZED (
        SELECT id, occurred_at, entity_key, attempts, payload
        FROM outbox_events
        WHERE delivered_at IS NULL
          AND next_attempt_at <= coalesce(CAST(:now AS timestamptz), now())
        ORDER BY occurred_at, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    SELECT c.id, c.occurred_at, c.attempts, c.payload
    FROM candidates AS c
    WHERE c.entity_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM outbox_events AS e
        WHERE e.delivered_at IS NULL
          AND e.entity_key = c.entity_key
          AND (e.occurred_at, e.id) < (c.occurred_at, c.id)
          AND e.id NOT IN (SELECT id FROM candidates)  -- uncorrelated: a hashed lookup
    )
    ORDER BY c.occurred_at, c.id
    """
)
_MARK_DELIVERED = text(
    "UPDATE outbox_events "
    "SET delivered_at = clock_timestamp(), attempts = attempts + 1, stored_durably = :durably "
    "WHERE id = ANY(CAST(:ids AS uuid[]))"
)
_BACK_OFF = text(
    """
    UPDATE outbox_events AS o
    SET attempts = o.attempts + 1,
        last_error = :error,
        next_attempt_at = clock_timestamp() + make_interval(secs => v.delay)
    FROM unnest(CAST(:ids AS uuid[]), CAST(:delays AS float8[])) AS v(id, delay)
    WHERE o.id = v.id
    """
)
_PRUNE = text(
    """
    DELETE FROM outbox_events WHERE id IN (
        SELECT id FROM outbox_events
        WHERE stored_durably AND delivered_at < now() - make_interval(days => :days)
        LIMIT :limit
    )
    """
)
_EXPIRE = text(
    """
    DELETE FROM outbox_events WHERE id IN (
        SELECT id FROM outbox_events
        WHERE delivered_at IS NOT NULL AND occurred_at < CAST(:cutoff AS timestamptz)
        LIMIT :limit
    )
    """
)
_STATUS = text(
    "SELECT count(*), "
    "coalesce(extract(epoch FROM clock_timestamp() - min(occurred_at)), 0) "
    "FROM outbox_events WHERE delivered_at IS NULL"
)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    delivered: int
    failed: int
    error: str | None = None
    store_failed: bool = False


@dataclass(frozen=True, slots=True)
class DrainOutcome:
    delivered: int
    failed: int
    error: str | None


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    backlog: int
    oldest_age_s: float


def backoff_delay(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` earlier ones: exponential, capped, with
    jitter so that rows (and relays) do not retry in lockstep."""
    delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** min(attempts, 16))
    return delay * random.uniform(0.5, 1.0)


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


async def _write(
    store: EventStore, documents: Sequence[dict[str, Any]]
) -> tuple[int, str | None, bool]:
    """Upsert `documents` in order. Returns how many leading documents are surely written, the
    error if any, and whether that error is about the next document alone (the store refused
    that one document) rather than the store as a whole (unreachable, timed out: outcome
    unknown)."""
    if not documents:
        return 0, None, False
    requests = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in documents]
    try:
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await store.collection.bulk_write(requests, ordered=True)
    except BulkWriteError as exc:
        # Ordered: everything before the first failed write was written.
        indexes = [e.get("index", 0) for e in exc.details.get("writeErrors") or []]
        if indexes:
            return min(indexes), describe_error(exc), True
        return 0, describe_error(exc), False  # a write concern error: outcome unknown
    except Exception as exc:
        return 0, describe_error(exc), False
    return len(documents), None, False


def _documents(rows: Sequence[Row[Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """Documents for the leading rows that convert; stops at the first that does not."""
    documents: list[dict[str, Any]] = []
    for row in rows:
        try:
            documents.append(to_document(row.payload))
        except Exception as exc:
            return documents, f"payload cannot be stored: {describe_error(exc)}"
    return documents, None


async def deliver_batch(
    sessionmaker: Sessionmaker,
    store: EventStore,
    *,
    batch_size: int = 500,
    now: datetime | None = None,
) -> BatchOutcome:
    """Claim, write and mark one batch (see the module docstring). `now` overrides the database
    clock when deciding which backed-off rows are due (tests use it to skip a backoff)."""
    async with sessionmaker() as session, session.begin():
        rows = (await session.execute(_CLAIM, {"now": now, "limit": batch_size})).all()
        if not rows:
            return BatchOutcome(0, 0)
        documents, conversion_error = _documents(rows)
        written, write_error, one_document = await _write(store, documents)
        if written:
            try:
                await rollups.refresh_after_delivery(session, store.collection, documents[:written])
            except Exception as exc:
                # Not marked delivered: the batch is delivered and recomputed again later.
                written, write_error, one_document = 0, describe_error(exc), False
        failed: Sequence[Row[Any]] = []
        error: str | None = None
        store_failed = False
        if write_error is not None and not one_document:
            # The store as a whole failed: every claimed event waits and retries.
            failed, error, store_failed = rows[written:], write_error, True
        elif write_error is not None or conversion_error is not None:
            # One event cannot be stored: it alone backs off. The rest of the batch is released
            # untouched and goes out with the next claim (its entity's later events wait for it).
            failed, error = rows[written : written + 1], write_error or conversion_error
        if written:
            await session.execute(
                _MARK_DELIVERED,
                {"ids": [row.id for row in rows[:written]], "durably": not store.in_process},
            )
        if failed:
            await session.execute(
                _BACK_OFF,
                {
                    "ids": [row.id for row in failed],
                    "delays": [backoff_delay(row.attempts) for row in failed],
                    "error": error or "not written",
                },
            )
    if written:
        OUTBOX_DELIVERED.inc(written)
        delivered_at = utcnow()
        for row in rows[:written]:
            DELIVERY_DELAY.observe(max(0.0, (delivered_at - row.occurred_at).total_seconds()))
    if failed:
        OUTBOX_DELIVERY_FAILURES.inc(len(failed))
    return BatchOutcome(written, len(failed), error, store_failed)


async def drain(
    sessionmaker: Sessionmaker,
    store: EventStore,
    *,
    batch_size: int = 500,
    now: datetime | None = None,
) -> DrainOutcome:
    """Deliver batches until a batch delivers nothing, or the store fails."""
    delivered = failed = 0
    error: str | None = None
    while True:
        outcome = await deliver_batch(sessionmaker, store, batch_size=batch_size, now=now)
        delivered += outcome.delivered
        failed += outcome.failed
        error = outcome.error or error
        if outcome.store_failed or outcome.delivered == 0:
            return DrainOutcome(delivered, failed, error)


async def deliver_pending(
    sessionmaker: Sessionmaker,
    store: EventStore,
    *,
    batch_size: int = 500,
    now: datetime | None = None,
) -> int:
    """Deliver every pending event that is due now; returns how many were delivered.

    What the relay loop runs on each wake-up; tests (which run with `RELAY_ENABLED=false`) call it
    to deliver what they recorded.
    """
    return (await drain(sessionmaker, store, batch_size=batch_size, now=now)).delivered


async def _delete_in_chunks(
    sessionmaker: Sessionmaker, statement: Any, params: dict[str, Any], chunk: int
) -> int:
    deleted = 0
    while True:
        async with sessionmaker() as session, session.begin():
            result = await session.execute(statement, {**params, "limit": chunk})
        count = int(getattr(result, "rowcount", 0) or 0)
        deleted += count
        if count < chunk:
            return deleted


async def prune_delivered(
    sessionmaker: Sessionmaker, retention_days: int, *, chunk: int = 5000
) -> int:
    """Delete the rows delivered more than `retention_days` ago that MongoDB holds (0 keeps
    everything). Rows only an in-process store holds are never pruned."""
    if retention_days <= 0:
        return 0
    return await _delete_in_chunks(sessionmaker, _PRUNE, {"days": retention_days}, chunk)


async def expire_events(
    sessionmaker: Sessionmaker, store: EventStore, *, now: datetime | None = None, chunk: int = 5000
) -> int:
    """Remove the events older than EVENT_RETENTION_DAYS: their delivered outbox rows and, in
    the in-process store, the events and the buckets that counted only them (MongoDB's TTL
    indexes do that there). Returns how many outbox rows were deleted."""
    cutoff = retention_cutoff(store.retention_days, now)
    if cutoff is None:
        return 0
    deleted = await _delete_in_chunks(sessionmaker, _EXPIRE, {"cutoff": cutoff}, chunk)
    if store.in_process:
        await store.collection.delete_many({"occurred_at": {"$lt": cutoff}})
        await rollups.drop_expired(store.collection, cutoff)
    return deleted


async def outbox_status(sessionmaker: Sessionmaker) -> OutboxStatus:
    """Backlog and the age of the oldest pending event; also refreshes the gauges."""
    async with sessionmaker() as session, session.begin():
        backlog, age = (await session.execute(_STATUS)).one()
    status = OutboxStatus(int(backlog), round(float(age), 3))
    OUTBOX_BACKLOG.set(status.backlog)
    RELAY_LAG.set(status.oldest_age_s)
    return status


class Relay:
    """The relay loop: wakes on a local commit or every poll interval, drains, prunes, reports."""

    def __init__(self, sessionmaker: Sessionmaker, store: EventStore, settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.store = store
        self.batch_size = settings.relay_batch_size
        self.poll_interval_s = settings.relay_poll_interval_s
        self.outbox_retention_days = settings.outbox_retention_days
        self._failing_since: float | None = None
        self._last_failure_log = 0.0
        self._next_prune = 0.0
        self._next_gauges = 0.0
        self._next_init = 0.0

    async def run(self) -> None:
        """Run until cancelled."""
        wake = asyncio.Event()
        with subscription(wake):
            log.info("outbox relay started", in_process_store=self.store.in_process)
            while True:
                wake.clear()
                try:
                    await self.tick()
                except Exception:  # only reporting can fail here (e.g. a closed log stream)
                    pass
                # `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` loses a
                # cancellation that arrives as the wake-up does, and the relay never stops.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval_s):
                        await wake.wait()

    async def tick(self) -> None:
        """One round: deliver what is due, then the periodic chores. Never raises."""
        now = time.monotonic()
        try:
            if not self.store.initialized and now >= self._next_init:
                self._next_init = now + 10.0
                await self.store.initialize()
            outcome = await drain(self.sessionmaker, self.store, batch_size=self.batch_size)
            self._report(outcome)
            if now >= self._next_gauges:
                self._next_gauges = now + GAUGES_EVERY_S
                await outbox_status(self.sessionmaker)
            if self.store.initialized:
                await rollups.advance(self.sessionmaker, self.store.collection, utcnow())
            if now >= self._next_prune:
                self._next_prune = now + PRUNE_EVERY_S
                pruned = await prune_delivered(self.sessionmaker, self.outbox_retention_days)
                if pruned:
                    log.info("pruned delivered outbox rows held by MongoDB", rows=pruned)
                expired = await expire_events(self.sessionmaker, self.store)
                if expired:
                    log.info("removed events past EVENT_RETENTION_DAYS", outbox_rows=expired)
        except Exception as exc:  # PostgreSQL unreachable, ...: try again on the next tick
            self._report(DrainOutcome(0, 1, describe_error(exc)))

    def _report(self, outcome: DrainOutcome) -> None:
        now = time.monotonic()
        if outcome.failed:
            if self._failing_since is None or now - self._last_failure_log >= FAILURE_LOG_EVERY_S:
                log.warning(
                    "event delivery failing; events stay in the outbox and are retried",
                    error=outcome.error,
                )
                self._last_failure_log = now
            if self._failing_since is None:
                self._failing_since = now
        elif outcome.delivered and self._failing_since is not None:
            log.info("event delivery recovered", after_s=round(now - self._failing_since, 1))
            self._failing_since = None
