"""What every `stockroom` command shares: the settings (or a one-line refusal), and the database it
runs on, with its schema ready.

Below the domains, so that their command modules can use it; `stockroom.cli` above them assembles
the commands into one `stockroom` program.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.settings import InsecureSettingsError, Settings, get_settings

if TYPE_CHECKING:
    from stockroom.db.runtime import DatabaseTarget

OUT_OF_DATE_HINT = "run `stockroom migrate`"


def load_settings() -> Settings:
    """Settings, or a one-line explanation and exit status 2 when they are unusable."""
    try:
        return get_settings()
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            ctx_error = (error.get("ctx") or {}).get("error")
            if isinstance(ctx_error, InsecureSettingsError):
                messages.append(str(ctx_error))
            else:
                loc = ".".join(str(p) for p in error["loc"]).upper() or "settings"
                messages.append(f"{loc}: {error['msg']}")
        typer.echo(f"stockroom: refusing to start: {'; '.join(messages)}", err=True)
        raise typer.Exit(2) from None


def database_target(
    settings: Settings, *, upgrade: bool = False, hint: str = OUT_OF_DATE_HINT
) -> DatabaseTarget:
    """The database a command runs on, its schema ready: the embedded server is ours, so it is
    migrated; an external one is migrated only when `upgrade` says so, else it must already be
    current (exit 1 with `hint` when it is not). The target holds the embedded server's handle:
    keep it while the database is in use."""
    # Imported here, as in every command: `stockroom --help` should not load Alembic.
    from stockroom.db import migrate as migrations
    from stockroom.db.embedded import EmbeddedPostgresError
    from stockroom.db.runtime import resolve_database

    try:
        target = resolve_database(settings)
    except EmbeddedPostgresError as exc:
        typer.echo(f"stockroom: {exc}", err=True)
        raise typer.Exit(1) from None
    if target.is_embedded or upgrade:
        migrations.upgrade(target.url)
    elif not migrations.schema_is_current(target.url):
        typer.echo(f"stockroom: the database schema is out of date; {hint}", err=True)
        raise typer.Exit(1)
    return target


@asynccontextmanager
async def command_database(
    settings: Settings, *, pool_size: int = 2, max_overflow: int = 2
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the command's database (see `database_target`), closed on the way out."""
    from stockroom.db.engine import create_engine, create_sessionmaker

    # Starting the embedded server blocks, and Alembic runs its own event loop: both stay off
    # this one. `target` keeps the embedded server's handle until the engine is disposed.
    target = await asyncio.to_thread(database_target, settings)
    engine = create_engine(target.url, pool_size=pool_size, max_overflow=max_overflow)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()
