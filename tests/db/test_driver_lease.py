"""`db.session.driver_lease`: a pooled asyncpg connection without a SQLAlchemy session, for the
fast paths. It must give every connection back, work when the pool has to grow past its size,
and never hand out again a connection that broke or whose statement was cut off."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from stockroom.db.engine import create_engine, create_sessionmaker
from stockroom.db.session import driver_lease


@pytest.fixture
async def small_engine(database_url: str) -> AsyncEngine:
    engine = create_engine(database_url, pool_size=2, max_overflow=2)
    yield engine  # type: ignore[misc]
    await engine.dispose()


async def test_a_lease_gives_its_connection_back(small_engine: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(small_engine)
    pool = small_engine.sync_engine.pool
    for _ in range(5):
        async with driver_lease(sessionmaker) as connection:
            assert await connection.fetchval("SELECT 1") == 1
            assert pool.checkedout() == 1  # type: ignore[attr-defined]
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
    assert pool.checkedin() == 1  # type: ignore[attr-defined]  # one connection, reused


async def test_leases_past_the_pool_size_use_overflow_and_close_it(
    small_engine: AsyncEngine,
) -> None:
    sessionmaker = create_sessionmaker(small_engine)
    pool = small_engine.sync_engine.pool
    entered = asyncio.Event()
    holding = 0

    async def hold() -> int:
        nonlocal holding
        async with driver_lease(sessionmaker) as connection:
            holding += 1
            if holding == 4:
                entered.set()
            await entered.wait()  # all four at once: two of them are overflow
            return int(await connection.fetchval("SELECT pg_backend_pid()"))

    pids = await asyncio.wait_for(asyncio.gather(*(hold() for _ in range(4))), 30)
    assert len(set(pids)) == 4
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    assert pool.checkedin() == 2  # type: ignore[attr-defined]  # the overflow ones were closed


async def test_a_broken_or_interrupted_connection_is_not_reused(
    small_engine: AsyncEngine,
) -> None:
    sessionmaker = create_sessionmaker(small_engine)
    async with driver_lease(sessionmaker) as connection:
        broken = connection
        await connection.close()  # as when the server goes away
    async with driver_lease(sessionmaker) as connection:
        assert connection is not broken
        assert await connection.fetchval("SELECT 1") == 1
        interrupted = connection

    async def slow() -> None:
        async with driver_lease(sessionmaker) as connection:
            assert connection is interrupted  # the idle one, reused
            await connection.fetchval("SELECT pg_sleep(10)")

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with driver_lease(sessionmaker) as connection:
        assert connection is not interrupted
        assert await connection.fetchval("SELECT 1") == 1


async def test_a_sessionmaker_bound_to_a_connection_leases_its_session_connection(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # The tests' sessionmaker (a connection in an outer transaction): the lease runs in it.
    async with driver_lease(sessionmaker) as connection:
        assert connection.is_in_transaction()
        assert await connection.fetchval("SELECT 1") == 1
