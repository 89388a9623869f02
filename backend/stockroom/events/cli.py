"""`stockroom relay` (`run_relay`), `stockroom events replay` and `stockroom events rebuild-rollups`
(`stockroom.cli` puts the last two in the `events` group)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom import commands
from stockroom.events.store import EventStore
from stockroom.settings import Settings
from stockroom.types import as_utc, utcnow

IN_PROCESS_EXPLANATION = (
    "MONGODB_URL is not set: the event store is in-process, inside `stockroom serve`, which "
    "rebuilds it (events and rollups) from every event the outbox keeps at each start and runs "
    "its own relay."
)


def _settings() -> Settings:
    """The command's settings (tests replace this function)."""
    return commands.load_settings()


async def _open_store(settings: Settings) -> EventStore:
    """The configured MongoDB store (tests replace this function)."""
    from stockroom.events.store import open_event_store

    return await open_event_store(settings)


@asynccontextmanager
async def _pipeline_resources(
    settings: Settings,
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], EventStore]]:
    async with commands.command_database(
        settings,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    ) as sessionmaker:
        store = await _open_store(settings)
        try:
            yield sessionmaker, store
        finally:
            store.close()


def replay_command(
    since: Annotated[
        datetime | None,
        typer.Option(
            help="replay events that occurred at or after this date/time (UTC unless an offset "
            "is given); default: every retained event",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S"],
        ),
    ] = None,
) -> None:
    """Write every event the outbox holds to MongoDB again, then recompute the dashboard
    rollups (idempotent: a second run changes nothing)."""
    from stockroom.events.replay import count_retained, replay

    settings = _settings()
    if not settings.mongodb_url:
        typer.echo(f"stockroom: {IN_PROCESS_EXPLANATION} Nothing to replay.", err=True)
        raise typer.Exit(2)
    since_utc = as_utc(since) if since else None

    async def run() -> None:
        async with _pipeline_resources(settings) as (sessionmaker, store):
            total = await count_retained(sessionmaker, since=since_utc)
            with typer.progressbar(length=total, label="Replaying events") as bar:
                outcome = await replay(
                    sessionmaker,
                    store,
                    since=since_utc,
                    progress=bar.update,
                )
        typer.echo(
            f"replayed {outcome.events} events: {outcome.inserted} new, "
            f"{outcome.updated} changed, {outcome.unchanged} already up to date"
        )

    try:
        asyncio.run(run())
    except Exception as exc:
        typer.echo(
            f"stockroom: replay failed ({type(exc).__name__}: {exc}); run it again", err=True
        )
        raise typer.Exit(1) from None


def rebuild_rollups_command(
    since: Annotated[
        datetime | None,
        typer.Option(
            help="recompute the buckets from this date/time on (UTC unless an offset is given); "
            "default: all of them",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S"],
        ),
    ] = None,
) -> None:
    """Recompute the dashboard rollups in MongoDB from the stored events (safe while the API
    and relays run; run it again if it fails)."""
    from stockroom.events import rollups

    settings = _settings()
    if not settings.mongodb_url:
        typer.echo(f"stockroom: {IN_PROCESS_EXPLANATION} Nothing to rebuild.", err=True)
        raise typer.Exit(2)
    since_utc = as_utc(since) if since else None

    async def run() -> None:
        async with _pipeline_resources(settings) as (sessionmaker, store):
            closed_through = await rollups.rebuild(
                sessionmaker, store.collection, utcnow(), since=since_utc
            )
        typer.echo(f"rollups rebuilt; hours before {closed_through:%Y-%m-%d %H:%M} UTC are closed")

    try:
        asyncio.run(run())
    except Exception as exc:
        typer.echo(
            f"stockroom: rebuild failed ({type(exc).__name__}: {exc}); run it again", err=True
        )
        raise typer.Exit(1) from None


# Work that runs beside the relay in its process, given the settings and the relay's
# sessionmaker (`stockroom.cli` passes the webhook dispatcher: events does not know webhooks).
Companion = Callable[[Settings, async_sessionmaker[AsyncSession]], AbstractAsyncContextManager[Any]]


def run_relay(companion: Companion, *, companion_enabled: Callable[[Settings], bool]) -> None:
    """Run the outbox relay in this process, with `companion` beside it, until a signal.

    Without MONGODB_URL the events relay lives inside `stockroom serve` (its in-process store);
    this process then runs the companion alone, if `companion_enabled` says it runs at all."""
    from stockroom.events.relay import Relay
    from stockroom.logs import configure_logging

    settings = _settings()
    relays_events = bool(settings.mongodb_url)
    if not relays_events and not companion_enabled(settings):
        typer.echo(f"stockroom: {IN_PROCESS_EXPLANATION} Set MONGODB_URL to run a relay.", err=True)
        raise typer.Exit(2)
    configure_logging(settings)

    async def run() -> None:
        work: Coroutine[Any, Any, object]
        async with AsyncExitStack() as stack:
            if relays_events:
                sessionmaker, store = await stack.enter_async_context(_pipeline_resources(settings))
                work = Relay(sessionmaker, store, settings).run()
                started = "outbox relay running; Ctrl-C to stop"
            else:
                sessionmaker = await stack.enter_async_context(
                    commands.command_database(
                        settings,
                        pool_size=settings.database_pool_size,
                        max_overflow=settings.database_max_overflow,
                    )
                )
                work = asyncio.Event().wait()  # the companion's task does the work
                started = (
                    "MONGODB_URL is not set: events are relayed inside `stockroom serve`; "
                    "running the webhook dispatcher only; Ctrl-C to stop"
                )
            await stack.enter_async_context(companion(settings, sessionmaker))
            task = asyncio.create_task(work)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, task.cancel)
            typer.echo(started)
            with contextlib.suppress(asyncio.CancelledError):
                await task
            typer.echo("outbox relay stopped")

    # uvloop, as `serve` runs on: the dispatcher's socket writes cost about half as much CPU.
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())
