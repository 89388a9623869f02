"""Start and stop the event store connection and the outbox relay with the app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from stockroom.events.relay import Relay
from stockroom.events.replay import rebuild_in_process_store
from stockroom.events.store import open_event_store
from stockroom.settings import Settings

log = structlog.get_logger("stockroom.events")


@asynccontextmanager
async def event_pipeline(app: FastAPI) -> AsyncIterator[None]:
    """Open the event store (`app.state.event_store`, `app.state.event_store_ping`), rebuild it
    from the retained outbox when it is in-process, and run the relay when `RELAY_ENABLED`."""
    settings: Settings = app.state.settings
    sessionmaker = app.state.sessionmaker
    store = await open_event_store(settings)
    app.state.event_store = store
    app.state.event_store_ping = store.ping
    relay_task: asyncio.Task[None] | None = None
    try:
        if store.in_process:
            rebuilt = await rebuild_in_process_store(sessionmaker, store)
            if rebuilt:
                log.info("in-process event store rebuilt from the outbox", events=rebuilt)
        if settings.relay_enabled:
            relay = Relay(sessionmaker, store, settings)
            relay_task = asyncio.create_task(relay.run(), name="stockroom-outbox-relay")
        yield
    finally:
        if relay_task is not None:
            relay_task.cancel()
            # Bounded: a relay stuck in I/O must not keep the process from shutting down.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(10):
                    await relay_task
        store.close()
