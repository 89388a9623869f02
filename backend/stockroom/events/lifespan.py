"""Start and stop the event store connection and the outbox relay with the app.

Placeholder until the event pipeline lands: the event store is reported healthy without a check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI


async def _event_store_ping_stub() -> bool:
    return True  # stub: replaced by a real ping when the event pipeline lands


@asynccontextmanager
async def event_pipeline(app: FastAPI) -> AsyncIterator[None]:
    app.state.event_store_ping = _event_store_ping_stub
    yield
