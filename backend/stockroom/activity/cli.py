"""`stockroom events export` (`stockroom.cli` puts it in the `events` group): activity events for
offline analysis."""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Annotated, TextIO

import typer

from stockroom import commands
from stockroom.activity.schemas import ExportFormat
from stockroom.settings import Settings
from stockroom.types import as_utc

_DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S"]


async def export_events(
    settings: Settings,
    out: TextIO,
    *,
    since: datetime | None,
    until: datetime | None,
    type_: str | None,
    export_format: ExportFormat,
) -> None:
    """Write the matching events to `out`, newest first, in constant memory.

    With MongoDB, read it directly. With the in-process store (no MONGODB_URL) the events live
    inside the server process, so this process rebuilds its own copy from the retained outbox
    in PostgreSQL first, as the server does at start.
    """
    from stockroom.activity import service
    from stockroom.activity.schemas import EventFilter
    from stockroom.events.store import open_event_store

    event_filter = EventFilter(type=type_, occurred_from=since, occurred_to=until)
    service.validate_filter(event_filter)
    async with AsyncExitStack() as stack:
        store = await open_event_store(settings)
        stack.callback(store.close)
        if store.in_process:
            from stockroom.events.replay import rebuild_in_process_store

            sessionmaker = await stack.enter_async_context(commands.command_database(settings))
            await rebuild_in_process_store(sessionmaker, store)
        # An operator with access to the deployment sees costs, as in the database itself.
        batch_size = (
            service.IN_PROCESS_EXPORT_BATCH_SIZE if store.in_process else service.EXPORT_BATCH_SIZE
        )
        chunks = await service.open_export(
            store.collection, event_filter, export_format, show_costs=True, batch_size=batch_size
        )
        async for chunk in chunks:
            out.write(chunk)
        out.flush()


def export_command(
    since: Annotated[
        datetime | None,
        typer.Option(
            help="events at or after this date/time (UTC unless an offset is given)",
            formats=_DATE_FORMATS,
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(help="events before this date/time (exclusive)", formats=_DATE_FORMATS),
    ] = None,
    type_: Annotated[
        str | None,
        typer.Option("--type", help="an event type, or a prefix with `*` (`stock.*`)"),
    ] = None,
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="ndjson (one JSON per line) or csv")
    ] = ExportFormat.NDJSON,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="file to write; default: standard output"),
    ] = None,
) -> None:
    """Export activity events (newest first) as NDJSON or CSV for offline analysis."""
    from stockroom.activity.errors import InvalidFilter
    from stockroom.logs import configure_logging

    settings = commands.load_settings()
    configure_logging(settings)  # logs to standard error: standard output carries the data

    def run(out: TextIO) -> None:
        asyncio.run(
            export_events(
                settings,
                out,
                since=as_utc(since) if since else None,
                until=as_utc(until) if until else None,
                type_=type_,
                export_format=export_format,
            )
        )

    try:
        if output is None:
            run(sys.stdout)
        else:
            with output.open("w", encoding="utf-8", newline="") as handle:
                run(handle)
    except InvalidFilter as exc:
        typer.echo(f"stockroom: {exc.detail}", err=True)
        raise typer.Exit(2) from None
