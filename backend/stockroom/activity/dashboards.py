"""Use cases of the activity dashboards: events per bucket, stock flow, top actors and the
summary, from the rollups and the raw events (`stockroom.events.rollups.read_pieces`).
Re-exported from `stockroom.activity.service`, where the router finds them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.activity import repository
from stockroom.activity.errors import InvalidFilter, guard
from stockroom.activity.repository import Collection
from stockroom.activity.schemas import (
    ActivityBucket,
    Bucket,
    DashboardSummary,
    StockFlowBucket,
    TopActor,
)
from stockroom.events.rollups import Piece, Tally, WarehouseFlow, floor_day
from stockroom.types import utcnow

# The longest range each bucket size may cover, so one request cannot ask for millions of buckets.
MAX_RANGE = {Bucket.HOUR: timedelta(days=31), Bucket.DAY: timedelta(days=366 * 5)}
DEFAULT_RANGE = {Bucket.HOUR: timedelta(hours=24), Bucket.DAY: timedelta(days=30)}
TOP_ACTORS_DEFAULT_RANGE = timedelta(days=30)


# --- dashboards ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: datetime
    end: datetime


def resolve_range(
    occurred_from: datetime | None,
    occurred_to: datetime | None,
    *,
    default: timedelta,
    maximum: timedelta,
    now: datetime | None = None,
) -> TimeRange:
    """`[from, to)`: `to` defaults to now, `from` to `to - default`; refused (422) when empty
    or longer than `maximum`."""
    end = occurred_to or (now or utcnow())
    start = occurred_from or end - default
    if start >= end:
        raise InvalidFilter(
            "`from` must be before `to`",
            errors=[
                {"loc": ["query", "from"], "msg": "must be before `to`", "type": "value_error"}
            ],
        )
    if end - start > maximum:
        raise InvalidFilter(
            f"the range may span at most {maximum.days} days for this bucket size",
            errors=[{"loc": ["query", "from"], "msg": "range too long", "type": "value_error"}],
        )
    return TimeRange(start, end)


async def _pieces(
    collection: Collection,
    start: datetime,
    end: datetime | None,
    *,
    days: bool,
    fields: tuple[str, ...],
) -> list[Piece]:
    return list(
        await guard(repository.read_pieces(collection, start, end, days=days, fields=fields))
    )


def _bucket_of(piece: Piece, bucket: Bucket) -> datetime:
    return piece.bucket_start if bucket is Bucket.HOUR else floor_day(piece.bucket_start)


async def activity_buckets(
    collection: Collection,
    occurred_from: datetime | None,
    occurred_to: datetime | None,
    bucket: Bucket,
) -> list[ActivityBucket]:
    """Events per UTC hour or day and type (closed buckets from the rollups, the rest from raw
    events)."""
    span = resolve_range(
        occurred_from, occurred_to, default=DEFAULT_RANGE[bucket], maximum=MAX_RANGE[bucket]
    )
    pieces = await _pieces(
        collection, span.start, span.end, days=bucket is Bucket.DAY, fields=("types",)
    )
    counts: dict[tuple[datetime, str], int] = {}
    for piece in pieces:
        start = _bucket_of(piece, bucket)
        for type_, count in piece.tally.types.items():
            counts[start, type_] = counts.get((start, type_), 0) + count
    return [
        ActivityBucket(bucket_start=start, type=type_, count=count)
        for (start, type_), count in sorted(counts.items())
    ]


async def stock_flow(
    collection: Collection,
    session: AsyncSession,
    occurred_from: datetime | None,
    occurred_to: datetime | None,
    bucket: Bucket,
    warehouse_id: uuid.UUID | None,
) -> list[StockFlowBucket]:
    """Units into and out of each warehouse per UTC day (or hour), from movement events, with
    each warehouse's code (from the events, else looked up in the catalog)."""
    span = resolve_range(
        occurred_from, occurred_to, default=DEFAULT_RANGE[bucket], maximum=MAX_RANGE[bucket]
    )
    pieces = await _pieces(
        collection, span.start, span.end, days=bucket is Bucket.DAY, fields=("warehouses",)
    )
    wanted = str(warehouse_id) if warehouse_id is not None else None
    flows: dict[tuple[datetime, str], WarehouseFlow] = {}
    codes: dict[str, WarehouseFlow] = {}  # the latest code seen per warehouse
    for piece in pieces:
        start = _bucket_of(piece, bucket)
        for id_, flow in piece.tally.warehouses.items():
            if wanted is not None and id_ != wanted:
                continue
            total = flows.setdefault((start, id_), WarehouseFlow())
            total.units_in += flow.units_in
            total.units_out += flow.units_out
            latest = codes.setdefault(id_, WarehouseFlow())
            if flow.code is not None and (
                latest.code_at is None
                or (flow.code_at is not None and flow.code_at > latest.code_at)
            ):
                latest.code, latest.code_at = flow.code, flow.code_at
    missing = sorted(id_ for id_, latest in codes.items() if latest.code is None)
    looked_up = await _warehouse_codes()(session, missing) if missing else {}
    return [
        StockFlowBucket(
            bucket_start=start,
            warehouse_id=id_,
            warehouse_code=codes[id_].code or looked_up.get(id_),
            units_in=flow.units_in,
            units_out=flow.units_out,
        )
        for (start, id_), flow in sorted(flows.items())
    ]


def _warehouse_codes() -> Callable[[AsyncSession, list[str]], Awaitable[dict[str, str]]]:
    from stockroom.catalog import service as catalog_service

    return catalog_service.warehouse_codes


async def top_actors(
    collection: Collection,
    occurred_from: datetime | None,
    occurred_to: datetime | None,
    limit: int,
) -> list[TopActor]:
    """The most active users in the range, most events first (ties by actor id), each with the
    email of their latest event."""
    span = resolve_range(
        occurred_from,
        occurred_to,
        default=TOP_ACTORS_DEFAULT_RANGE,
        maximum=MAX_RANGE[Bucket.DAY],
    )
    total = Tally()
    for piece in await _pieces(collection, span.start, span.end, days=True, fields=("actors",)):
        total.merge(piece.tally)
    ranked = sorted(total.actors.items(), key=lambda item: (-item[1].events, item[0]))
    return [
        TopActor(actor_id=actor_id, email=tally.email, events=tally.events)
        for actor_id, tally in ranked[:limit]
    ]


Counter = Callable[[AsyncSession], Awaitable[int]]


def _relational_counters() -> tuple[Counter, Counter, Counter, Counter]:
    from stockroom.purchasing import service as purchasing_service
    from stockroom.sales import service as sales_service
    from stockroom.stock import service as stock_service

    return (
        stock_service.count_low_stock_products,
        stock_service.count_open_transfers,
        purchasing_service.count_open_orders,
        sales_service.count_open_orders,
    )


@dataclass(frozen=True, slots=True)
class EventFigures:
    events_today: int
    movements_today: int
    failed_logins_24h: int
    active_users_7d: int


# The week's actors are only counted: their ids are all it reads of them.
_WEEK_FIELDS = ("events", "types", "actors.actor_id")


async def event_figures(collection: Collection, now: datetime) -> EventFigures:
    """The summary figures the event store answers: two reads of rollups and raw edges, one
    from 7 days ago and one from 24 hours ago ("today" is part of the first)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week, day = await asyncio.gather(
        _pieces(collection, now - timedelta(days=7), None, days=True, fields=_WEEK_FIELDS),
        _pieces(collection, now - timedelta(hours=24), None, days=True, fields=("types",)),
    )
    actors: set[str] = set()
    today = Tally()
    for piece in week:
        actors.update(piece.tally.actors)
        # Day pieces are whole days before today; midnight is an hour boundary.
        if piece.bucket_start >= midnight:
            today.merge(piece.tally)
    failed_logins = sum(piece.tally.types.get(repository.FAILED_LOGIN_EVENT, 0) for piece in day)
    return EventFigures(
        events_today=today.events,
        movements_today=today.types.get(repository.MOVEMENT_EVENT, 0),
        failed_logins_24h=failed_logins,
        active_users_7d=len(actors),
    )


async def summary(
    collection: Collection, session: AsyncSession, now: datetime | None = None
) -> DashboardSummary:
    """Headline numbers: today's events (UTC day), active users, failed logins, and the stock
    figures that only PostgreSQL knows."""
    count_low_stock, count_open_transfers, count_open_pos, count_open_sos = _relational_counters()
    # Each opens its own short transaction on the session.
    low_stock = await count_low_stock(session)
    open_transfers = await count_open_transfers(session)
    open_purchase_orders = await count_open_pos(session)
    open_sales_orders = await count_open_sos(session)
    figures = await event_figures(collection, now or utcnow())
    return DashboardSummary(
        events_today=figures.events_today,
        active_users_7d=figures.active_users_7d,
        movements_today=figures.movements_today,
        failed_logins_24h=figures.failed_logins_24h,
        low_stock_products=low_stock,
        open_transfers=open_transfers,
        open_purchase_orders=open_purchase_orders,
        open_sales_orders=open_sales_orders,
    )
