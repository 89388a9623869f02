"""Start and stop the webhook dispatcher with the app (or with `stockroom relay`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.settings import Settings
from stockroom.webhooks.client import WebhookClient
from stockroom.webhooks.dispatcher import Dispatcher
from stockroom.webhooks.guard import TargetGuard


def target_guard(settings: Settings) -> TargetGuard:
    return TargetGuard(
        allow_private=settings.webhook_allow_private_targets,
        require_https=settings.is_production,
    )


@asynccontextmanager
async def running_dispatcher(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    guard: TargetGuard | None = None,
) -> AsyncIterator[Dispatcher | None]:
    """The dispatcher loop in a background task while the block runs, unless
    `WEBHOOK_DISPATCHER_ENABLED=false`."""
    if not settings.webhook_dispatcher_enabled:
        yield None
        return
    client = WebhookClient(
        guard or target_guard(settings),
        timeout_s=settings.webhook_timeout_s,
        max_connections=settings.webhook_concurrency,
    )
    dispatcher = Dispatcher(
        sessionmaker,
        client,
        concurrency=settings.webhook_concurrency,
        poll_interval_s=settings.webhook_poll_interval_s,
    )
    task = asyncio.create_task(dispatcher.run(), name="stockroom-webhook-dispatcher")
    try:
        yield dispatcher
    finally:
        task.cancel()
        # Bounded: an attempt stuck in I/O must not keep the process from shutting down; its
        # delivery's lease ends and another dispatcher makes the attempt again.
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(5):
                await task
        await client.aclose()


@asynccontextmanager
async def webhook_dispatcher(app: FastAPI) -> AsyncIterator[None]:
    """`app.state.webhook_guard` (the forgery guard the routes check URLs with) and the
    dispatcher."""
    settings: Settings = app.state.settings
    app.state.webhook_guard = target_guard(settings)
    async with running_dispatcher(settings, app.state.sessionmaker, app.state.webhook_guard):
        yield
