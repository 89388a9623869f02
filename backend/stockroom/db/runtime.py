"""Opening the database the settings point at: an external URL, or the embedded server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from stockroom.db.embedded import async_url, ensure_database, start_embedded_postgres
from stockroom.db.engine import create_engine, create_sessionmaker
from stockroom.settings import Settings


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    url: str
    embedded_server: Any | None  # the embedded server's handle, kept alive while in use

    @property
    def is_embedded(self) -> bool:
        return self.embedded_server is not None


def resolve_database(settings: Settings) -> DatabaseTarget:
    """The external `DATABASE_URL`, or the embedded server (started or joined) and its URL."""
    if settings.database_url:
        return DatabaseTarget(url=settings.database_url, embedded_server=None)
    server = start_embedded_postgres(settings.stockroom_data_dir)
    ensure_database(server)
    return DatabaseTarget(url=async_url(server), embedded_server=server)


@dataclass(frozen=True, slots=True)
class Database:
    target: DatabaseTarget
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    target = await asyncio.to_thread(resolve_database, settings)
    engine = create_engine(
        target.url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    try:
        yield Database(target=target, engine=engine, sessionmaker=create_sessionmaker(engine))
    finally:
        await engine.dispose()
