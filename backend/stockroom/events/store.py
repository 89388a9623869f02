"""The event store connection: a real MongoDB (Motor) or an in-process mongomock-motor store.

The in-process store lives in the memory of one process: it is rebuilt from the retained outbox
at every start (see `stockroom.events.lifespan`), and a deployment with several processes or
replicas needs `MONGODB_URL`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from beanie import init_beanie

from stockroom.events.documents import COLLECTION, ActivityEvent, activity_indexes
from stockroom.events.mongomock_patch import _patch_mongomock
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
