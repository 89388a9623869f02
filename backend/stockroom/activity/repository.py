"""Every query the activity domain sends to the event store (MongoDB, or mongomock in process).

Queries are shaped for the indexes the event pipeline declares on `activity_events`:
`occurred_at`, `(type, occurred_at)`, `(actor.id, occurred_at)`,
`(entity.type, entity.id, occurred_at)`. Aggregations run in the database; Python only sees
their (small) results. Every aggregation operator used here exists both in MongoDB 7+ and in
mongomock (see `PIPELINE_OPERATORS` and its test).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from stockroom.activity.cursor import SortKey
from stockroom.activity.schemas import Bucket, EventFilter
from stockroom.events import rollups
from stockroom.types import as_utc

# A Motor collection, or mongomock-motor's look-alike: both are duck-typed here.
Collection = Any
Document = dict[str, Any]

MOVEMENT_EVENT = "stock.movement_posted"
FAILED_LOGIN_EVENT = "auth.login_failed"

_TYPE_CHARS = re.compile(r"^[A-Za-z0-9_.\-]+$")


def valid_type_filter(value: str) -> bool:
    """An exact event type (`product.created`) or a prefix ending in `*` (`stock.*`, `*`)."""
    body = value[:-1] if value.endswith("*") else value
    return value == "*" or bool(_TYPE_CHARS.match(body))


def sort_key(document: Document) -> SortKey:
    return SortKey(occurred_at=as_utc(document["occurred_at"]), id=str(document["_id"]))


# --- filters ------------------------------------------------------------------------------


async def base_query(collection: Collection, event_filter: EventFilter) -> Document:
    """The filter document for everything but time, which each query bounds itself.

    A type prefix becomes an `$in` over the matching types (found with an index-backed
    `distinct`), so the `(type, occurred_at)` index can still return events in time order
    instead of sorting every event of those types.
    """
    query: Document = {}
    if event_filter.type is not None:
        prefix = event_filter.type_prefix
        if prefix is None:
            query["type"] = event_filter.type
        elif prefix:
            types = await collection.distinct("type", {"type": {"$regex": f"^{re.escape(prefix)}"}})
            query["type"] = {"$in": sorted(types)}
    if event_filter.actor_id is not None:
        query["actor.id"] = str(event_filter.actor_id)
    if event_filter.entity_type is not None:
        query["entity.type"] = event_filter.entity_type
    elif event_filter.entity_id is not None:
        # The entity index leads with `entity.type`: name the (few) types so it can be used.
        types = await collection.distinct("entity.type", {})
        query["entity.type"] = {"$in": sorted(t for t in types if t is not None)}
    if event_filter.entity_id is not None:
        query["entity.id"] = str(event_filter.entity_id)
    return query


def _bounded(
    query: Document,
    *,
    gte: datetime | None = None,
    lt: datetime | None = None,
    lte: datetime | None = None,
    before: SortKey | None = None,
) -> Document:
    """`query` restricted in time, and to events strictly older than `before` in
    `(occurred_at, _id)` order. The top-level `occurred_at` range gives the planner tight index
    bounds; the `$or` only breaks ties within one millisecond."""
    bounds: Document = {}
    if gte is not None:
        bounds["$gte"] = gte
    if lt is not None:
        bounds["$lt"] = lt
    if before is not None:
        lte = before.occurred_at if lte is None else min(lte, before.occurred_at)
    if lte is not None:
        bounds["$lte"] = lte
    result = dict(query)
    if bounds:
        result["occurred_at"] = bounds
    if before is not None:
        result["$or"] = [
            {"occurred_at": {"$lt": before.occurred_at}},
            {"occurred_at": before.occurred_at, "_id": {"$lt": before.id}},
        ]
    return result


def _latest(lhs: datetime | None, rhs: datetime | None) -> datetime | None:
    if lhs is None:
        return rhs
    return lhs if rhs is None else max(lhs, rhs)


def _earliest(lhs: datetime | None, rhs: datetime | None) -> datetime | None:
    if lhs is None:
        return rhs
    return lhs if rhs is None else min(lhs, rhs)


NEWEST_FIRST = [("occurred_at", -1), ("_id", -1)]


# --- the activity log ------------------------------------------------------------------------


async def fetch_page(
    collection: Collection,
    query: Document,
    event_filter: EventFilter,
    before: SortKey | None,
    limit: int,
) -> tuple[list[Document], bool]:
    """Up to `limit` events older than `before`, newest first, and whether more follow.

    Two index-bounded queries instead of one sort over every older event: the first walks the
    time index (covered: it reads only `occurred_at`) to find the time of the `limit`-th older
    event; the second fetches and fully orders just the events between that time and `before`,
    which are `limit` plus the ties at either end.
    """
    # Strictly older than `before`'s time: the ties at that very time are settled below.
    seek = _bounded(
        query,
        gte=event_filter.occurred_from,
        lt=_earliest(event_filter.occurred_to, before.occurred_at if before else None),
    )
    times = [
        doc["occurred_at"]
        async for doc in collection.find(seek, {"_id": 0, "occurred_at": 1})
        .sort("occurred_at", -1)
        .limit(limit + 1)
    ]
    floor = as_utc(times[limit - 1]) if len(times) >= limit else None
    settle = _bounded(
        query,
        gte=_latest(event_filter.occurred_from, floor),
        lt=event_filter.occurred_to,
        before=before,
    )
    documents: list[Document] = (
        await collection.find(settle).sort(NEWEST_FIRST).limit(limit + 1).to_list(limit + 1)
    )
    has_more = len(documents) > limit or len(times) > limit
    return documents[:limit], has_more


async def iterate_events(
    collection: Collection,
    query: Document,
    event_filter: EventFilter,
    *,
    batch_size: int,
    now: datetime,
) -> AsyncIterator[Document]:
    """Every matching event, newest first, holding at most about one batch in memory.

    It walks back in time windows sized to hold about one batch (growing through quiet periods,
    shrinking in busy ones), each fetched with a bounded, index-ranged query and continued by
    keyset within the window when it holds more than a batch. Neither MongoDB nor the in-process
    store has to materialise or sort more than one window, so memory does not grow with the
    number of events exported.
    """
    lower_limit = event_filter.occurred_from
    upper: datetime | None = event_filter.occurred_to  # exclusive; None: open (future events)
    before: SortKey | None = None  # keyset position inside a window being read in batches
    top = upper or now
    width = timedelta(hours=1)
    most = batch_size
    density_known = False

    def window_below(top: datetime, width: timedelta) -> tuple[datetime, bool]:
        lo = top - width
        if lower_limit is not None and lo <= lower_limit:
            return lower_limit, True
        return lo, False

    while True:
        lo, last_window = window_below(top, width)
        window = _bounded(query, gte=lo, lt=upper, before=before)
        matched = 1
        if not density_known:
            # Narrow a fresh window until it holds at most one batch (or one millisecond).
            # Counting stops early in MongoDB and copies nothing in the in-process store.
            halving = False
            while True:
                matched = await collection.count_documents(window, limit=most + 1)
                if matched == 0 and halving and not last_window:
                    # The upper half is empty, so the crowd is in the lower half: look there.
                    before, upper, top = None, lo, lo
                    halving = False  # (if events vanished meanwhile, the next zero ends this)
                elif matched <= most or width <= _ONE_MS:
                    break
                else:
                    halving = True
                    width = max(_ONE_MS, width / 2)
                lo, last_window = window_below(top, width)
                window = _bounded(query, gte=lo, lt=upper, before=before)
        documents: list[Document] = []
        if matched:
            documents = (
                await collection.find(window)
                .sort(NEWEST_FIRST)
                .limit(batch_size)
                .to_list(batch_size)
            )
        for document in documents:
            yield document
        if len(documents) >= batch_size:
            # More in this window, or just below: continue by keyset, in a window as long as
            # this batch spanned (the batch measured the density, so no count is needed).
            before = sort_key(documents[-1])
            width = max(_ONE_MS, sort_key(documents[0]).occurred_at - before.occurred_at)
            top = before.occurred_at
            density_known = True
            continue
        density_known = False
        if last_window:
            return
        if not documents:
            older = _bounded(query, gte=lower_limit, lt=lo)
            if await collection.count_documents(older, limit=1) == 0:
                return
        before, upper, top = None, lo, lo
        if len(documents) < batch_size // 2:
            width *= 4


_ONE_MS = timedelta(milliseconds=1)


# --- dashboards ------------------------------------------------------------------------------

# The dashboards read rollups (closed buckets) plus raw events (the open hour and partial edges).
read_pieces = rollups.read_pieces


# --- dashboards as one aggregation over raw events -------------------------------------------
#
# What the dashboards answer, defined as one pipeline over the raw events of the range: the
# answer the rollups must equal (tests compare them over random event streams), the "before" of
# bench/activity.py, and the starting point of the analysts' queries in docs/events.md. The
# endpoints no longer run them: their cost grows with the events in the range.
#
# Buckets are UTC calendar hours/days. They are built from date parts (`$year` ... `$hour`) and
# `$dateFromParts` rather than `$dateTrunc`, which mongomock does not implement.

# Every stage and expression operator the pipelines below may use. Each exists in MongoDB 7+ and
# in mongomock; tests/activity/test_pipelines.py checks both, and every pipeline against it.
PIPELINE_OPERATORS = frozenset(
    {
        # stages
        "$match",
        "$project",
        "$group",
        "$sort",
        "$limit",
        "$count",
        # query operators inside $match
        "$gte",
        "$lt",
        "$lte",
        "$gt",
        # expressions
        "$year",
        "$month",
        "$dayOfMonth",
        "$hour",
        "$dateFromParts",
        "$sum",
        "$first",
        "$cond",
        "$ifNull",
        "$toLong",
        "$subtract",
    }
)


def _time_match(occurred_from: datetime, occurred_to: datetime) -> Document:
    return {"occurred_at": {"$gte": occurred_from, "$lt": occurred_to}}


def _bucket_key(bucket: Bucket) -> Document:
    key: Document = {
        "y": {"$year": "$occurred_at"},
        "m": {"$month": "$occurred_at"},
        "d": {"$dayOfMonth": "$occurred_at"},
    }
    if bucket is Bucket.HOUR:
        key["h"] = {"$hour": "$occurred_at"}
    return key


def _bucket_start(bucket: Bucket) -> Document:
    parts: Document = {"year": "$_id.y", "month": "$_id.m", "day": "$_id.d"}
    if bucket is Bucket.HOUR:
        parts["hour"] = "$_id.h"
    return {"$dateFromParts": parts}


def activity_pipeline(
    occurred_from: datetime, occurred_to: datetime, bucket: Bucket
) -> list[Document]:
    """Events per (UTC bucket, type) in `[occurred_from, occurred_to)`."""
    return [
        {"$match": _time_match(occurred_from, occurred_to)},
        {"$group": {"_id": {**_bucket_key(bucket), "type": "$type"}, "count": {"$sum": 1}}},
        {
            "$project": {
                "_id": 0,
                "bucket_start": _bucket_start(bucket),
                "type": "$_id.type",
                "count": 1,
            }
        },
        {"$sort": {"bucket_start": 1, "type": 1}},
    ]


def stock_flow_pipeline(
    occurred_from: datetime,
    occurred_to: datetime,
    bucket: Bucket,
    warehouse_id: uuid.UUID | None,
) -> list[Document]:
    """Units in and out per (UTC bucket, warehouse), from `stock.movement_posted` events.

    A movement's `data.signed_quantity` is positive for stock arriving (receipt, return,
    transfer_in, positive adjustment or count) and negative for stock leaving; transfers count
    as out of the source and into the destination warehouse.
    """
    match: Document = {"type": MOVEMENT_EVENT, **_time_match(occurred_from, occurred_to)}
    if warehouse_id is not None:
        match["data.warehouse_id"] = str(warehouse_id)
    quantity = "$quantity"
    return [
        {"$match": match},
        {
            "$project": {
                "occurred_at": 1,
                "warehouse_id": "$data.warehouse_id",
                "quantity": {"$toLong": {"$ifNull": ["$data.signed_quantity", 0]}},
            }
        },
        {
            "$group": {
                "_id": {**_bucket_key(bucket), "warehouse_id": "$warehouse_id"},
                "units_in": {"$sum": {"$cond": [{"$gt": [quantity, 0]}, quantity, 0]}},
                "units_out": {
                    "$sum": {"$cond": [{"$lt": [quantity, 0]}, {"$subtract": [0, quantity]}, 0]}
                },
            }
        },
        {
            "$project": {
                "_id": 0,
                "bucket_start": _bucket_start(bucket),
                "warehouse_id": "$_id.warehouse_id",
                "units_in": 1,
                "units_out": 1,
            }
        },
        {"$sort": {"bucket_start": 1, "warehouse_id": 1}},
    ]


def top_actors_pipeline(
    occurred_from: datetime, occurred_to: datetime, limit: int
) -> list[Document]:
    """The `limit` actors with the most events in the range; ties by actor id."""
    return [
        # `$gt: ""` matches string ids only: system events (actor null) are not anyone's.
        {"$match": {**_time_match(occurred_from, occurred_to), "actor.id": {"$gt": ""}}},
        # Newest first, so `$first` picks each actor's current email.
        {"$sort": {"occurred_at": -1}},
        {
            "$group": {
                "_id": "$actor.id",
                "email": {"$first": "$actor.email"},
                "events": {"$sum": 1},
            }
        },
        {"$sort": {"events": -1, "_id": 1}},
        {"$limit": limit},
        {"$project": {"_id": 0, "actor_id": "$_id", "email": 1, "events": 1}},
    ]


def active_actors_pipeline(since: datetime) -> list[Document]:
    """The number of distinct actors since `since`, counted in the database."""
    return [
        {"$match": {"occurred_at": {"$gte": since}, "actor.id": {"$gt": ""}}},
        {"$group": {"_id": "$actor.id"}},
        {"$count": "actors"},
    ]


async def aggregate(collection: Collection, pipeline: list[Document]) -> list[Document]:
    results: list[Document] = await collection.aggregate(pipeline).to_list(None)
    return results


async def count(collection: Collection, query: Document) -> int:
    return int(await collection.count_documents(query))


async def count_active_actors(collection: Collection, since: datetime) -> int:
    rows = await aggregate(collection, active_actors_pipeline(since))
    return int(rows[0]["actors"]) if rows else 0


def since_midnight_query(midnight: datetime, type_: str | None = None) -> Document:
    query: Document = {"type": type_} if type_ else {}
    query["occurred_at"] = {"$gte": midnight}
    return query
