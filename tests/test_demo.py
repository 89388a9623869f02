"""`stockroom seed --demo` as a user runs it: a populated catalog, stock and one user per role."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from stockroom.db.engine import create_engine

pytestmark = pytest.mark.slow


async def stockroom(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MONGODB_URL"}}
    env.update(DATABASE_URL=database_url, LOG_LEVEL="WARNING", RELAY_ENABLED="false")
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stockroom.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM products WHERE sku LIKE 'DEMO-%'),"
                    " (SELECT count(*) FROM warehouses),"
                    " (SELECT count(*) FROM users WHERE email LIKE '%@demo.stockroom.example.com'),"
                    " (SELECT count(*) FROM stock_movements),"
                    " (SELECT count(*) FROM outbox_events WHERE type = 'product.created')"
                )
            )
            products, warehouses, users, movements, events = rows.one()
    finally:
        await engine.dispose()
    return {
        "products": products,
        "warehouses": warehouses,
        "users": users,
        "movements": movements,
        "product events": events,
    }


async def test_seed_demo_fills_every_domain_through_its_services_and_runs_once(
    fresh_database: str,
) -> None:
    first = await stockroom(fresh_database, "seed", "--demo", "--products", "6")
    assert first.returncode == 0, first.stderr
    assert "demo data: 15 categories, 4 suppliers, 3 warehouses, 6 products" in first.stdout
    counts = await _counts(fresh_database)
    assert counts["products"] == 6
    assert counts["warehouses"] == 3
    assert counts["users"] == 4
    assert counts["movements"] > 0
    assert f"{counts['movements']} stock movements" in first.stdout
    # Written through the use cases: each product's creation is an activity event.
    assert counts["product events"] == 6

    again = await stockroom(fresh_database, "seed", "--demo")
    assert again.returncode == 0, again.stderr
    assert "already present" in again.stdout
    assert await _counts(fresh_database) == counts


async def test_seed_without_demo_does_nothing() -> None:
    result = await stockroom("postgresql+asyncpg://unused/unused", "seed")
    assert result.returncode == 2
    assert "pass --demo" in result.stderr
