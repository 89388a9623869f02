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

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pymongo
from pymongo import DeleteOne, ReplaceOne
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.types import as_utc

Collection = Any
Document = dict[str, Any]
Sessionmaker = async_sessionmaker[AsyncSession]

ROLLUPS = "activity_rollups"
STATE_ID = "state"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MOVEMENT_EVENT = "stock.movement_posted"

# The fields a rollup reads from a raw event.
RAW_PROJECTION: Document = {
    "_id": 0,
    "type": 1,
    "occurred_at": 1,
    "actor.id": 1,
    "actor.email": 1,
    "data.warehouse_id": 1,
    "data.warehouse_code": 1,
    "data.signed_quantity": 1,
}

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


# --- time ------------------------------------------------------------------------------------


def floor_hour(value: datetime) -> datetime:
    return as_utc(value).replace(minute=0, second=0, microsecond=0)


def ceil_hour(value: datetime) -> datetime:
    floor = floor_hour(value)
    return floor if floor == as_utc(value) else floor + HOUR


def floor_day(value: datetime) -> datetime:
    return floor_hour(value).replace(hour=0)


def ceil_day(value: datetime) -> datetime:
    floor = floor_day(value)
    return floor if floor == as_utc(value) else floor + DAY


def _hours(start: datetime, end: datetime) -> list[datetime]:
    hours, hour = [], start
    while hour < end:
        hours.append(hour)
        hour += HOUR
    return hours


# --- folding raw events ----------------------------------------------------------------------


@dataclass(slots=True)
class WarehouseFlow:
    units_in: int = 0
    units_out: int = 0
    code: str | None = None
    code_at: datetime | None = None


@dataclass(slots=True)
class ActorTally:
    events: int = 0
    email: str | None = None
    last_at: datetime | None = None


def _later(at: datetime | None, than: datetime | None) -> bool:
    return at is not None and (than is None or at > than)


def _to_long(value: Any) -> int:
    """`$toLong` of a quantity: integers as they are, numbers truncated, anything else 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return 0
    return 0


@dataclass(slots=True)
class Tally:
    """What a bucket counts: events, by type, stock units by warehouse, events by actor."""

    events: int = 0
    types: dict[str, int] = field(default_factory=dict)
    warehouses: dict[str, WarehouseFlow] = field(default_factory=dict)
    actors: dict[str, ActorTally] = field(default_factory=dict)

    def add_event(self, event: Mapping[str, Any]) -> None:
        """Count one raw event (a document of `activity_events`, or its `RAW_PROJECTION`)."""
        self.events += 1
        kind = str(event.get("type"))
        self.types[kind] = self.types.get(kind, 0) + 1
        at = as_utc(event["occurred_at"])
        actor = event.get("actor")
        actor_id = actor.get("id") if isinstance(actor, Mapping) else None
        # String ids only, as the dashboards always counted: system events are nobody's.
        if isinstance(actor_id, str) and actor_id:
            tally = self.actors.get(actor_id)
            if tally is None:
                tally = self.actors[actor_id] = ActorTally()
            tally.events += 1
            if _later(at, tally.last_at):
                tally.email, tally.last_at = actor.get("email"), at  # type: ignore[union-attr]
        if kind != MOVEMENT_EVENT:
            return
        data = event.get("data")
        warehouse_id = data.get("warehouse_id") if isinstance(data, Mapping) else None
        if not isinstance(warehouse_id, str) or not warehouse_id:
            return
        assert isinstance(data, Mapping)
        flow = self.warehouses.get(warehouse_id)
        if flow is None:
            flow = self.warehouses[warehouse_id] = WarehouseFlow()
        quantity = _to_long(data.get("signed_quantity"))
        if quantity > 0:
            flow.units_in += quantity
        elif quantity < 0:
            flow.units_out -= quantity
        code = data.get("warehouse_code")
        if isinstance(code, str) and _later(at, flow.code_at):
            flow.code, flow.code_at = code, at

    def merge(self, other: Tally) -> None:
        self.events += other.events
        for kind, count in other.types.items():
            self.types[kind] = self.types.get(kind, 0) + count
        for warehouse_id, theirs in other.warehouses.items():
            flow = self.warehouses.get(warehouse_id)
            if flow is None:
                flow = self.warehouses[warehouse_id] = WarehouseFlow()
            flow.units_in += theirs.units_in
            flow.units_out += theirs.units_out
            if theirs.code is not None and _later(theirs.code_at, flow.code_at):
                flow.code, flow.code_at = theirs.code, theirs.code_at
        for actor_id, their in other.actors.items():
            tally = self.actors.get(actor_id)
            if tally is None:
                tally = self.actors[actor_id] = ActorTally()
            tally.events += their.events
            if _later(their.last_at, tally.last_at):
                tally.email, tally.last_at = their.email, their.last_at

    def to_document(self, granularity: str, start: datetime) -> Document:
        end = start + (HOUR if granularity == "hour" else DAY)
        document = {
            "_id": rollup_id(granularity, start),
            "granularity": granularity,
            "bucket_start": start,
            "bucket_end": end,
            "events": self.events,
            "types": [{"type": k, "count": v} for k, v in sorted(self.types.items())],
            "warehouses": [
                {
                    "warehouse_id": k,
                    "warehouse_code": v.code,
                    "units_in": v.units_in,
                    "units_out": v.units_out,
                    "code_at": v.code_at,
                }
                for k, v in sorted(self.warehouses.items())
            ],
            "actors": [
                {"actor_id": k, "email": v.email, "events": v.events, "last_at": v.last_at}
                for k, v in sorted(self.actors.items())
            ],
        }
        document["rev"] = revision(document)
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Tally:
        def at(value: Any) -> datetime | None:
            return as_utc(value) if isinstance(value, datetime) else None

        return cls(
            events=int(document.get("events", 0)),
            types={row["type"]: int(row["count"]) for row in document.get("types", [])},
            warehouses={
                row["warehouse_id"]: WarehouseFlow(
                    int(row["units_in"]),
                    int(row["units_out"]),
                    row.get("warehouse_code"),
                    at(row.get("code_at")),
                )
                for row in document.get("warehouses", [])
            },
            actors={
                row["actor_id"]: ActorTally(
                    int(row.get("events", 0)), row.get("email"), at(row.get("last_at"))
                )
                for row in document.get("actors", [])
            },
        )


def revision(document: Mapping[str, Any]) -> str:
    """A digest of a bucket's content (every field but `rev`): equal revisions, equal counts.
    Readers cache the bucket parsed under it (`read_pieces`), so an unchanged bucket is read
    as its `bucket_start` and `rev` alone."""
    content = repr(
        sorted((key, _canonical(value)) for key, value in document.items() if key != "rev")
    )
    return hashlib.blake2b(content.encode(), digest_size=16).hexdigest()


def _canonical(value: Any) -> Any:
    # Dates compared as UTC instants whatever their tzinfo (read back aware, written naive).
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, dict):
        return sorted((k, _canonical(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def rollup_id(granularity: str, start: datetime) -> str:
    return f"{granularity}:{as_utc(start).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def fold(events: Iterable[Mapping[str, Any]]) -> dict[datetime, Tally]:
    """Raw events, tallied per UTC hour."""
    tallies: dict[datetime, Tally] = {}
    for event in events:
        hour = floor_hour(event["occurred_at"])
        tally = tallies.get(hour)
        if tally is None:
            tally = tallies[hour] = Tally()
        tally.add_event(event)
    return tallies


def time_range(start: datetime, end: datetime | None) -> Document:
    bounds: Document = {"$gte": start}
    if end is not None:
        bounds["$lt"] = end
    return {"occurred_at": bounds}


async def fold_raw(
    events: Collection, start: datetime, end: datetime | None
) -> dict[datetime, Tally]:
    """The raw events in `[start, end)` (`end` None: no upper bound), tallied per hour."""
    cursor = events.find(time_range(start, end), RAW_PROJECTION)
    return fold([document async for document in cursor])


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
