"""What the per-request principal lookup costs, call by call, against one raw asyncpg round trip.

    uv run python bench/auth_lookup.py [--calls 2000]

Starts an embedded PostgreSQL in a temporary folder and migrates it, then times (CPU and wall,
per call, after a warm-up) the ways the API could load a request's user and permissions: the
current one (a session in its own transaction: BEGIN, SELECT, COMMIT), the same query on an
AUTOCOMMIT connection (one round trip), an empty session transaction (SQLAlchemy defers BEGIN
until the first statement, so it sends nothing), and a raw asyncpg `fetchrow` as the floor. The
differences say what folding the lookup into the use case's transaction could save.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from stockroom.auth import repository
from stockroom.db import migrate
from stockroom.db.embedded import async_url, ensure_database, start_embedded_postgres
from stockroom.db.engine import create_engine


async def timed(name: str, call: Callable[[], Awaitable[object]], calls: int) -> None:
    for _ in range(50):
        await call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await call()
    cpu_us = (time.process_time() - cpu) / calls * 1e6
    wall_us = (time.perf_counter() - wall) / calls * 1e6
    print(f"| {name} | {cpu_us:,.0f} us | {wall_us:,.0f} us |", flush=True)


async def run(engine: AsyncEngine, calls: int) -> None:
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    user_id = uuid.uuid4()
    token = repository.TokenSession(uuid.uuid4(), datetime.now(UTC))

    async def own_transaction() -> None:
        async with sessionmaker() as session, session.begin():
            await repository.load_principal(session, user_id, token)

    async def on_autocommit_connection() -> None:
        async with autocommit.connect() as connection:
            await connection.execute(repository.PRINCIPAL_QUERY, token.params(user_id))

    async def empty_transaction() -> None:
        async with sessionmaker() as session, session.begin():
            await session.connection()

    pooled = await engine.raw_connection()
    try:
        driver = pooled.driver_connection
        assert driver is not None

        async def raw_round_trip() -> None:
            await driver.fetchrow("SELECT $1::uuid", user_id)

        print("| call | CPU | wall |\n|---|---|---|")
        await timed("raw asyncpg `fetchrow` (one round trip)", raw_round_trip, calls)
        await timed("session + `begin()` + commit, no statement", empty_transaction, calls)
        await timed("principal query in its own session transaction", own_transaction, calls)
        await timed("principal query on an AUTOCOMMIT connection", on_autocommit_connection, calls)
    finally:
        pooled.close()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="stockroom-bench-auth-lookup-"))
    server = start_embedded_postgres(data_dir)
    try:
        ensure_database(server)
        url = async_url(server)
        migrate.upgrade(url)  # outside the event loop: Alembic's env runs its own
        asyncio.run(run(create_engine(url), args.calls))
    finally:
        server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
