"""The folding of raw activity events into bucket tallies (`Tally`), plain Python shared by the
rollup writer and readers (`stockroom.events.rollups`) and the dashboards. A tally turns into a
rollup document (`to_document`, with its content `revision`) and back (`from_document`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stockroom.types import as_utc

Collection = Any
Document = dict[str, Any]

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
