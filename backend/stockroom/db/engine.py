"""Async engine and session factory."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def normalize_url(url: str) -> str:
    """Accept `postgres://` and `postgresql://` URLs and use the asyncpg driver for them."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 20, max_overflow: int = 10) -> AsyncEngine:
    return create_async_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        # No pre-ping: it costs a round trip on every checkout (two per request). After a
        # PostgreSQL restart the first statement on a dead connection fails, SQLAlchemy sees a
        # disconnect and invalidates the whole pool, the client gets a retryable 503, and the
        # next request connects afresh, with no API restart (tests/hardening/test_database_outage).
        pool_recycle=1800,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Sessions never autoflush behind the service's back and keep objects usable after commit,
    # so a service can build its response from what it just committed.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def describe_url(url: str) -> str:
    """The URL with its password hidden, for logs and the startup banner."""
    return make_url(url).render_as_string(hide_password=True)
