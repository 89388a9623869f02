"""Dashboard rollups: pre-aggregated buckets of activity events, kept exact under redelivery.

Collection `activity_rollups`, one document per UTC hour (`granularity: "hour"`) and per UTC day
(`"day"`), `_id` = `"<granularity>:<bucket start, ISO 8601>"`:

    {_id, granularity, bucket_start, bucket_end, events,
     types:      [{type, count}],
     warehouses: [{warehouse_id, warehouse_code, units_in, units_out, code_at}],
     actors:     [{actor_id, email, events, last_at}]}

plus one state document `{_id: "state", closed_through}`: the watermark. Every hour before it
is closed and its document is exact; the hours from it on are open and dashboards read them from
the raw events (`read_pieces`).

Exactness under at-least-once delivery: a bucket is never incremented. It is recomputed from
its raw events (`fold`) and replaced whole (an upsert keyed by `_id`), so delivering an event
twice, replaying, or crashing between writing events and writing buckets cannot double count or
lose a count: the next recompute sees exactly the raw events. A day document is recomputed from
its 24 hour documents, after them. Recomputes are serialized by one PostgreSQL advisory lock,
taken after the events are written: the last recompute of a bucket starts after every event
written before it, so it sees them all. Who recomputes what:

- the relay, after each batch, the touched hours before the watermark (late events, redelivery)
  and their days;
- the watermark's advance (`advance`, every relay tick), the hours that closed since; events of
  an hour still open when they were delivered are therefore counted when it closes;
- `rebuild` (`stockroom events rebuild-rollups`, `events replay`) every hour, from raw events;
- the in-process store's rebuild at start folds the events as it loads them (`RollupBuilder`).

Only `find` with `$gte`/`$lt`, upserts and deletes reach the store: the folding is plain Python,
the same for MongoDB and mongomock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pymongo
from pymongo import DeleteOne, ReplaceOne
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# The folding lives in `tally`; re-exported here, where callers and tests have always found it.
from stockroom.events.tally import (
    DAY,
    HOUR,
    MOVEMENT_EVENT,
    RAW_PROJECTION,
    ActorTally,
    Tally,
    WarehouseFlow,
    _hours,
    ceil_day,
    ceil_hour,
    floor_day,
    floor_hour,
    fold,
    fold_raw,
    revision,
    rollup_id,
    time_range,
)
from stockroom.types import as_utc

__all__ = [
    "DAY",
    "HOUR",
    "MOVEMENT_EVENT",
    "RAW_PROJECTION",
    "ROLLUPS",
    "STATE_ID",
    "ActorTally",
    "Piece",
    "RollupBuilder",
    "Tally",
    "WarehouseFlow",
    "advance",
    "ceil_day",
    "ceil_hour",
    "drop_expired",
    "floor_day",
    "floor_hour",
    "fold",
    "fold_raw",
    "lock",
    "read_pieces",
    "rebuild",
    "refresh_after_delivery",
    "revision",
    "rollup_id",
    "rollup_indexes",
    "rollups_of",
    "time_range",
    "watermark",
]

Collection = Any
Document = dict[str, Any]
Sessionmaker = async_sessionmaker[AsyncSession]

ROLLUPS = "activity_rollups"
STATE_ID = "state"

# pg_advisory_xact_lock key of rollup recomputes (any constant unique to this purpose).
_LOCK_KEY = 0x57_0C_4B_00_2011_0001
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def rollup_indexes(retention_days: int = 0) -> list[pymongo.IndexModel]:
    """Dashboards read buckets by `(granularity, bucket_start)`. With a retention, buckets
    expire when their last event would (a TTL on `bucket_end`)."""
    ttl: dict[str, Any] = (
        {"expireAfterSeconds": retention_days * 86_400} if retention_days > 0 else {}
    )
    return [
        pymongo.IndexModel(
            [("granularity", pymongo.ASCENDING), ("bucket_start", pymongo.ASCENDING)],
            name="granularity_1_bucket_start_1",
        ),
        pymongo.IndexModel([("bucket_end", pymongo.ASCENDING)], name="bucket_end_1", **ttl),
    ]


# --- the rollup collection -------------------------------------------------------------------


def rollups_of(events: Collection) -> Collection:
    """The rollup collection beside `activity_events`."""
    return events.database[ROLLUPS]


async def watermark(rollups: Collection) -> datetime | None:
    """The start of the first open hour; None when the rollups were never built."""
    state = await rollups.find_one({"_id": STATE_ID})
    value = state.get("closed_through") if state else None
    return as_utc(value) if isinstance(value, datetime) else None


async def _set_watermark(rollups: Collection, when: datetime) -> None:
    await rollups.replace_one(
        {"_id": STATE_ID}, {"_id": STATE_ID, "closed_through": when}, upsert=True
    )


async def _write_hours(
    rollups: Collection, hours: Iterable[datetime], tallies: Mapping[datetime, Tally]
) -> None:
    """Replace the documents of `hours` by `tallies` (an hour without events has none)."""
    requests: list[Any] = []
    for hour in hours:
        tally = tallies.get(hour)
        if tally is None:
            requests.append(DeleteOne({"_id": rollup_id("hour", hour)}))
        else:
            document = tally.to_document("hour", hour)
            requests.append(ReplaceOne({"_id": document["_id"]}, document, upsert=True))
    if requests:
        await rollups.bulk_write(requests, ordered=False)


async def _refresh_days(
    rollups: Collection, days: Iterable[datetime], closed_through: datetime
) -> None:
    """Recompute each closed day in `days` from its hour documents."""
    requests: list[Any] = []
    for day in sorted(set(days)):
        if day + DAY > closed_through:
            continue  # still open: read from hours and raw events until it closes
        total = Tally()
        hour_documents = rollups.find(
            {"granularity": "hour", "bucket_start": {"$gte": day, "$lt": day + DAY}}
        )
        found = False
        async for document in hour_documents:
            total.merge(Tally.from_document(document))
            found = True
        if found:
            document = total.to_document("day", day)
            requests.append(ReplaceOne({"_id": document["_id"]}, document, upsert=True))
        else:
            requests.append(DeleteOne({"_id": rollup_id("day", day)}))
    if requests:
        await rollups.bulk_write(requests, ordered=False)


async def _recompute(
    events: Collection,
    rollups: Collection,
    start: datetime,
    end: datetime,
    closed_through: datetime,
) -> None:
    """Recompute every hour in `[start, end)` (hour-aligned) from raw events, a day at a time,
    and then the closed days they belong to."""
    day = start
    while day < end:
        chunk_end = min(end, floor_day(day) + DAY)
        tallies = await fold_raw(events, day, chunk_end)
        await _write_hours(rollups, _hours(day, chunk_end), tallies)
        await _refresh_days(rollups, [floor_day(day)], closed_through)
        day = chunk_end


async def lock(session: AsyncSession) -> None:
    """Serialize rollup recomputes (held until the session's transaction ends)."""
    await session.execute(_LOCK, {"key": _LOCK_KEY})


async def refresh_after_delivery(
    session: AsyncSession, events: Collection, delivered: Iterable[Mapping[str, Any]]
) -> None:
    """Recompute the closed hours (and days) that just-written events fall in. Runs in the
    relay's batch transaction, after the events are written and before they are marked
    delivered: if it fails, the batch is delivered again and recomputed again."""
    hours = {floor_hour(document["occurred_at"]) for document in delivered}
    if not hours:
        return
    rollups = rollups_of(events)
    await lock(session)
    closed_through = await watermark(rollups)
    if closed_through is None:
        return  # never built: the first `advance` folds everything
    closed = sorted(hour for hour in hours if hour < closed_through)
    for hour in closed:
        tallies = await fold_raw(events, hour, hour + HOUR)
        await _write_hours(rollups, [hour], tallies)
    await _refresh_days(rollups, {floor_day(hour) for hour in closed}, closed_through)


async def _earliest_event(events: Collection) -> datetime | None:
    first = await events.find_one({}, {"_id": 0, "occurred_at": 1}, sort=[("occurred_at", 1)])
    return as_utc(first["occurred_at"]) if first else None


async def advance(sessionmaker: Sessionmaker, events: Collection, now: datetime) -> bool:
    """Close the hours that ended since the watermark: recompute them (and the days they close)
    and move the watermark to the current hour. Builds everything when there is no watermark.
    Returns whether anything was closed."""
    rollups = rollups_of(events)
    target = floor_hour(now)
    current = await watermark(rollups)
    if current is not None and current >= target:
        return False  # the common case, without touching PostgreSQL
    async with sessionmaker() as session, session.begin():
        await lock(session)
        current = await watermark(rollups)
        if current is not None and current >= target:
            return False
        start = current
        if start is None:
            earliest = await _earliest_event(events)
            start = floor_hour(earliest) if earliest is not None else target
            start = min(start, target)
        await _recompute(events, rollups, start, target, target)
        await _set_watermark(rollups, target)
    return True


async def rebuild(
    sessionmaker: Sessionmaker, events: Collection, now: datetime, *, since: datetime | None = None
) -> datetime | None:
    """Recompute every rollup from raw events (those from `since` on, if given); returns the
    watermark it leaves.

    The hours before the current watermark are recomputed first, a day per transaction (the
    relay keeps recomputing the closed hours its deliveries touch meanwhile), then the
    watermark advances over the rest. Run it again if it fails.
    """
    rollups = rollups_of(events)
    closed_through = await watermark(rollups)
    if closed_through is not None:
        if since is not None:
            start = floor_hour(since)
        else:
            earliest = await _earliest_event(events)
            start = floor_hour(earliest) if earliest is not None else closed_through
            # Buckets before the first event (their events are gone) count nothing any more.
            await rollups.delete_many(
                {"granularity": {"$in": ["hour", "day"]}, "bucket_end": {"$lte": start}}
            )
        hour = min(start, closed_through)
        while hour < closed_through:
            chunk_end = min(closed_through, floor_day(hour) + DAY)
            async with sessionmaker() as session, session.begin():
                await lock(session)
                await _recompute(events, rollups, hour, chunk_end, closed_through)
            hour = chunk_end
    await advance(sessionmaker, events, now)
    return await watermark(rollups)


async def drop_expired(events: Collection, cutoff: datetime) -> None:
    """Remove the buckets whose every event is older than `cutoff` (the in-process store's
    counterpart of MongoDB's TTL index)."""
    await rollups_of(events).delete_many(
        {"granularity": {"$in": ["hour", "day"]}, "bucket_end": {"$lte": cutoff}}
    )


class RollupBuilder:
    """Rollups folded from events as they are loaded into an empty store (the in-process
    rebuild at start), instead of reading them back."""

    def __init__(self) -> None:
        self.tallies: dict[datetime, Tally] = {}

    def add(self, documents: Iterable[Mapping[str, Any]]) -> None:
        for hour, tally in fold(documents).items():
            existing = self.tallies.get(hour)
            if existing is None:
                self.tallies[hour] = tally
            else:
                existing.merge(tally)

    async def write(self, events: Collection, now: datetime) -> None:
        """Write the closed hours and days and set the watermark to the current hour."""
        rollups = rollups_of(events)
        target = floor_hour(now)
        closed = {hour: tally for hour, tally in self.tallies.items() if hour < target}
        days: dict[datetime, Tally] = {}
        for hour, tally in sorted(closed.items()):
            if floor_day(hour) + DAY <= target:
                day = days.get(floor_day(hour))
                if day is None:
                    day = days[floor_day(hour)] = Tally()
                day.merge(tally)
        documents = [t.to_document("hour", h) for h, t in closed.items()]
        documents += [t.to_document("day", d) for d, t in days.items()]
        if documents:
            await rollups.insert_many(documents)
        await _set_watermark(rollups, target)


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    """A tally of the events of one hour (`granularity` "hour") or one day ("day") within the
    range asked for (a partial hour at either edge is still keyed by its hour)."""

    bucket_start: datetime
    granularity: str
    tally: Tally


async def read_pieces(
    events: Collection,
    start: datetime,
    end: datetime | None,
    *,
    days: bool,
    fields: Sequence[str] = ("events", "types", "warehouses", "actors"),
) -> list[Piece]:
    """The events in `[start, end)` (`end` None: no upper bound) as pieces: closed whole hours
    (and, when `days`, closed whole days) from the rollups, the rest from raw events, which
    are at most the partial hour at the start and the hours from the watermark on. Rollup
    documents are read as `bucket_start` and `rev` only, and parsed from the cache of buckets
    by revision (`_buckets`); `fields` is kept for callers and no longer narrows the read."""
    rollups = rollups_of(events)
    closed_through = await watermark(rollups)
    first = ceil_hour(start)
    last = floor_hour(end) if end is not None else None
    covered_end = closed_through
    if covered_end is not None and last is not None:
        covered_end = min(covered_end, last)
    if covered_end is None or first >= covered_end:
        return [Piece(h, "hour", t) for h, t in (await fold_raw(events, start, end)).items()]
    pieces: list[Piece] = []
    if start < first:
        head = await fold_raw(events, start, first)
        pieces += [Piece(h, "hour", t) for h, t in head.items()]
    hour_ranges = [(first, covered_end)]
    if days:
        day_start, day_end = ceil_day(first), floor_day(covered_end)
        if day_start < day_end:
            pieces += await _buckets(rollups, "day", day_start, day_end)
            hour_ranges = [(first, day_start), (day_end, covered_end)]
    for lo, hi in hour_ranges:
        if lo >= hi:
            continue
        pieces += await _buckets(rollups, "hour", lo, hi)
    if end is None or covered_end < end:
        tail = await fold_raw(events, covered_end, end)
        pieces += [Piece(h, "hour", t) for h, t in tail.items()]
    return pieces


# Parsed buckets by revision, shared by every reader of this process (read-only: the dashboards
# merge them into tallies of their own). A closed bucket changes only when a late event falls
# in it, and then its revision changes, so a cached entry is never stale: it is just no longer
# asked for. Bounded: about a month of hour buckets and five years of day buckets.
_CACHE_SIZE = 3_000
_parsed: OrderedDict[str, Tally] = OrderedDict()


async def _buckets(
    rollups: Collection, granularity: str, start: datetime, end: datetime
) -> list[Piece]:
    """The `granularity` buckets starting in `[start, end)`: one read of their `bucket_start`
    and `rev`, and a second, whole read only when one of them is not cached yet (a new or
    recomputed bucket, or the first read of this process)."""
    query = {"granularity": granularity, "bucket_start": {"$gte": start, "$lt": end}}
    light = [d async for d in rollups.find(query, {"_id": 0, "bucket_start": 1, "rev": 1})]
    tallies: list[Tally | None] = [_cached(d.get("rev")) for d in light]
    if any(tally is None for tally in tallies):
        light = [d async for d in rollups.find(query)]
        tallies = []
        for document in light:
            tally = Tally.from_document(document)
            rev = document.get("rev")
            if isinstance(rev, str):
                _remember(rev, tally)
            tallies.append(tally)
    return [
        Piece(as_utc(d["bucket_start"]), granularity, tally if tally is not None else Tally())
        for d, tally in zip(light, tallies, strict=True)
    ]


def _cached(rev: Any) -> Tally | None:
    if not isinstance(rev, str):
        return None
    tally = _parsed.get(rev)
    if tally is not None:
        _parsed.move_to_end(rev)
    return tally


def _remember(rev: str, tally: Tally) -> None:
    _parsed[rev] = tally
    _parsed.move_to_end(rev)
    while len(_parsed) > _CACHE_SIZE:
        _parsed.popitem(last=False)
