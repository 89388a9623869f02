"""The event store connection: a real MongoDB (Motor) or an in-process mongomock-motor store.

The in-process store lives in the memory of one process: it is rebuilt from the retained outbox
at every start (see `stockroom.events.lifespan`), and a deployment with several processes or
replicas needs `MONGODB_URL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from beanie import init_beanie

from stockroom.events.documents import COLLECTION, ActivityEvent, activity_indexes
from stockroom.events.rollups import ROLLUPS, rollup_indexes
from stockroom.settings import Settings

log = structlog.get_logger("stockroom.events")

PING_TIMEOUT_S = 1.0
SERVER_SELECTION_TIMEOUT_MS = 3000


class EventStore:
    """Where activity events are stored. `collection` is the Motor collection `activity_events`,
    `rollups` its dashboard buckets (`activity_rollups`, see `stockroom.events.rollups`)."""

    def __init__(self, client: Any, database: Any, *, in_process: bool, retention_days: int = 0):
        self.client = client
        self.database = database
        self.collection: Any = database[COLLECTION]
        self.rollups: Any = database[ROLLUPS]
        self.in_process = in_process
        self.retention_days = retention_days
        self.initialized = False

    @property
    def ttl_days(self) -> int:
        """Days of the TTL index on `occurred_at` (0: none).

        Only a real MongoDB gets one: mongomock enforces TTL by scanning every document on every
        operation. The in-process store instead loads only the retained days when it is rebuilt.
        """
        return 0 if self.in_process else self.retention_days

    async def ping(self) -> bool:
        """True when the store answers a ping within a second."""
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await self.database.command("ping")
        except Exception:
            return False
        return True

    async def initialize(self) -> bool:
        """Bind the Beanie document and create the indexes; False (logged) if the store is down.

        Delivery does not need this (the relay writes through `collection`), so the relay simply
        retries it later; the API starts and takes writes while MongoDB is down.
        """
        if self.initialized:
            return True
        try:
            await _reconcile_ttl_index(self.collection, "occurred_at_1", self.ttl_days)
            ActivityEvent.Settings.indexes = activity_indexes(self.ttl_days)
            await init_beanie(database=self.database, document_models=[ActivityEvent])
            await _reconcile_ttl_index(self.rollups, "bucket_end_1", self.ttl_days)
            await self.rollups.create_indexes(rollup_indexes(self.ttl_days))
        except Exception as exc:
            log.warning("event store not initialized, will retry", error=repr(exc))
            return False
        self.initialized = True
        return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


async def _reconcile_ttl_index(collection: Any, name: str, ttl_days: int) -> None:
    # MongoDB refuses to create an index whose key exists with other options, so a changed
    # EVENT_RETENTION_DAYS means dropping the old TTL index first.
    info = await collection.index_information()
    current = info.get(name)
    if current is None:
        return
    wanted = ttl_days * 86_400 if ttl_days > 0 else None
    if current.get("expireAfterSeconds") != wanted:
        log.info("rebuilding an index for a new event retention", index=name)
        await collection.drop_index(name)


_COMPARISONS: dict[str, Callable[[datetime, datetime], bool]] = {
    "$gte": operator.ge,
    "$gt": operator.gt,
    "$lte": operator.le,
    "$lt": operator.lt,
}


@dataclass(frozen=True, slots=True)
class _TimeRange:
    """A filter split in two: its `occurred_at` range of dates, and everything else."""

    low: tuple[datetime, str] | None  # (bound, "$gte" or "$gt")
    high: tuple[datetime, str] | None  # (bound, "$lte" or "$lt")
    rest: dict[str, Any]

    def admits(self, value: datetime) -> bool:
        low, high = self.low, self.high
        return (low is None or _COMPARISONS[low[1]](value, low[0])) and (
            high is None or _COMPARISONS[high[1]](value, high[0])
        )


def _split_time_range(filter: Any, field: str = "occurred_at") -> _TimeRange | None:
    """The filter's range on `field` (a date) when it is only `$gte/$gt/$lte/$lt` on naive (UTC)
    datetimes, else None."""
    if type(filter) is not dict:
        return None
    bounds = filter.get(field)
    if type(bounds) is not dict or not bounds or not bounds.keys() <= _COMPARISONS.keys():
        return None
    if not all(type(value) is datetime and value.tzinfo is None for value in bounds.values()):
        return None
    # The strictest bound on each side: the highest low ($gt over $gte on a tie) and the
    # lowest high ($lt over $lte on a tie).
    lows = [(value, op) for op, value in bounds.items() if op in ("$gte", "$gt")]
    highs = [(value, op) for op, value in bounds.items() if op in ("$lte", "$lt")]
    low = max(lows, key=lambda bound: (bound[0], bound[1] == "$gt")) if lows else None
    high = min(highs, key=lambda bound: (bound[0], bound[1] == "$lte")) if highs else None
    rest = {key: value for key, value in filter.items() if key != field}
    return _TimeRange(low, high, rest)


def _patch_mongomock() -> None:
    """Four changes to mongomock 4.3, applied once, for the in-process store only.

    - pymongo 4.11+ passes `sort` to bulk replace/update operations; mongomock predates it.
    - mongomock finds a document by `_id` by testing every document: an upsert keyed by `_id`
      (every relay write) would cost O(collection). Equality on a string `_id` becomes a lookup.
    - mongomock tests every document against the whole filter in Python (about 30 us each), so
      each activity page or export window cost O(collection) at that rate. In a filter with an
      `occurred_at` range of dates, the range is checked with plain comparisons (as MongoDB's
      index bounds would) and only the rest of the filter goes through mongomock, so a window
      costs a fast pass plus its own documents. The answer is exactly mongomock's (tested).
    - mongomock's cursor copies its remaining results for every document it yields, so reading
      n documents from one cursor cost O(n^2); it now indexes into them.
    """
    from mongomock import filtering
    from mongomock.collection import BulkOperationBuilder, Collection, Cursor

    filter_applies: Any = filtering.filter_applies

    builder: Any = BulkOperationBuilder
    if getattr(builder, "_stockroom_patched", False):
        return
    add_replace, add_update = builder.add_replace, builder.add_update

    def patched_replace(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        return add_replace(self, *args, **kwargs)

    def patched_update(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        return add_update(self, *args, **kwargs)

    builder.add_replace = patched_replace
    builder.add_update = patched_update
    builder._stockroom_patched = True

    collection: Any = Collection
    iter_documents = collection._iter_documents

    def patched_iter_documents(self: Any, filter: Any) -> Any:
        if type(filter) is dict and len(filter) == 1 and isinstance(filter.get("_id"), str):
            key = filter["_id"]
            return iter([self._store[key]] if key in self._store else [])
        # Events are ranged by `occurred_at`, dashboard rollups by `bucket_start`.
        field = "bucket_start" if self.name == ROLLUPS else "occurred_at"
        time_range = _split_time_range(filter, field)
        if time_range is None or self._store.is_empty:
            return iter_documents(self, filter)
        admits, rest = time_range.admits, time_range.rest
        matched = []
        for document in list(self._store.documents):
            # Stored dates are naive UTC, like the filter's by now: a date is compared directly
            # (as MongoDB's index bounds would). Anything else (a missing field, an array,
            # another type) goes to mongomock's own filter, whole.
            value = document.get(field)
            if type(value) is datetime:
                if not admits(value) or (rest and not filter_applies(rest, document)):
                    continue
            elif not filter_applies(filter, document):
                continue
            matched.append(document)
        return iter(matched)

    collection._iter_documents = patched_iter_documents

    cursor: Any = Cursor

    def patched_next(self: Any) -> Any:
        results = self._compute_results()  # all of them, computed once per query
        position = self._skip + self._emitted
        if position >= len(results) or (self._limit and self._emitted >= abs(self._limit)):
            raise StopIteration
        self._emitted += 1
        return results[position]

    cursor.__next__ = cursor.next = patched_next


def in_process_event_store(retention_days: int = 0) -> EventStore:
    """A fresh, empty in-process store (mongomock-motor)."""
    from mongomock_motor import AsyncMongoMockClient

    _patch_mongomock()
    client: Any = AsyncMongoMockClient(tz_aware=True)
    return EventStore(client, client["stockroom"], in_process=True, retention_days=retention_days)


def mongodb_event_store(url: str, database: str, retention_days: int = 0) -> EventStore:
    """A Motor client for a real MongoDB. Connecting is lazy: a server that is down is no error."""
    from motor.motor_asyncio import AsyncIOMotorClient

    client: Any = AsyncIOMotorClient(
        url,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
        connectTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
        appname="stockroom",
    )
    return EventStore(client, client[database], in_process=False, retention_days=retention_days)


async def open_event_store(settings: Settings) -> EventStore:
    """The event store the settings point at, initialized when it is reachable."""
    if settings.mongodb_url:
        store = mongodb_event_store(
            settings.mongodb_url, settings.mongodb_database, settings.event_retention_days
        )
    else:
        store = in_process_event_store(settings.event_retention_days)
        # A fresh logger, not the module's cached one, so the line follows the current config.
        structlog.get_logger("stockroom.events").info(
            "event store is in-process: events are in memory, rebuilt from the outbox at start; "
            "set MONGODB_URL to keep them in MongoDB"
        )
    await store.initialize()
    return store
