"""Alembic, driven from code so that the installed package migrates without a config file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from stockroom.db.engine import create_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed through attributes, not the ini parser, so that '%' in passwords needs no escaping.
    config.attributes["database_url"] = normalize_url(url)
    return config


def upgrade(url: str, revision: str = "head", *, sql: bool = False) -> None:
    """Upgrade the schema (or, with `sql`, print the SQL that would do it). Call outside a loop."""
    command.upgrade(alembic_config(url), revision, sql=sql)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


async def current_revision(url: str) -> str | None:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_read_revision)
    finally:
        await engine.dispose()


def _read_revision(connection: object) -> str | None:
    context = MigrationContext.configure(connection)  # type: ignore[arg-type]
    return context.get_current_revision()


def schema_is_current(url: str) -> bool:
    return asyncio.run(current_revision(url)) == head_revision()
