"""`stockroom seed --demo` as a user runs it: a populated catalog, stock, orders in every status
and one user per role."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

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


async def _orders(url: str) -> dict[str, Any]:
    """Orders by status, and reserved per level beside what the open sales orders leave
    unshipped."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            purchases = dict(
                (await connection.execute(text(_BY_STATUS.format(table="purchase_orders")))).all()
            )
            sales = dict(
                (await connection.execute(text(_BY_STATUS.format(table="sales_orders")))).all()
            )
            reserved = dict(
                (
                    await connection.execute(
                        text(
                            "SELECT product_id::text || '@' || warehouse_id::text, reserved"
                            "  FROM stock_levels WHERE reserved <> 0"
                        )
                    )
                ).all()
            )
            unshipped = dict(
                (
                    await connection.execute(
                        text(
                            "SELECT l.product_id::text || '@' || o.warehouse_id::text,"
                            "       sum(l.quantity - l.shipped_quantity)"
                            "  FROM sales_order_lines l"
                            "  JOIN sales_orders o ON o.id = l.sales_order_id"
                            " WHERE o.status IN ('confirmed', 'partially_shipped')"
                            " GROUP BY 1"
                        )
                    )
                ).all()
            )
            on_order = await connection.scalar(text("SELECT sum(on_order) FROM stock_levels"))
            linked = await connection.scalar(
                text(
                    "SELECT count(*) FROM stock_movements"
                    " WHERE purchase_order_id IS NOT NULL OR sales_order_id IS NOT NULL"
                )
            )
    finally:
        await engine.dispose()
    return {
        "purchases": purchases,
        "sales": sales,
        "reserved": reserved,
        "unshipped": unshipped,
        "on_order": on_order,
        "linked movements": linked,
    }


_BY_STATUS = "SELECT status, count(*) FROM {table} GROUP BY status"


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

    # Orders in every status, their stock figures in step with them.
    assert "demo orders: 6 purchase orders, 5 sales orders" in first.stdout
    orders = await _orders(fresh_database)
    assert orders["purchases"] == dict.fromkeys(
        ("draft", "ordered", "partially_received", "received", "cancelled", "closed"), 1
    )
    assert orders["sales"] == dict.fromkeys(
        ("draft", "confirmed", "partially_shipped", "shipped", "cancelled"), 1
    )
    # confirmed 6, partially shipped 8 (3 shipped) and 4 on its second line
    assert sum(orders["reserved"].values()) == 6 + 5 + 4
    assert orders["reserved"] == orders["unshipped"]
    assert orders["on_order"] == 30 + (30 - 12)  # ordered, partially received
    assert orders["linked movements"] == 3 + 2  # receive calls, ship calls
    suggestions = int(first.stdout.split(" reorder suggestions")[0].rsplit(" ", 1)[-1])
    assert suggestions > 0
    # The ledger, reserved and on order agree with the movements and the orders: no drift.
    check = await stockroom(fresh_database, "stock", "check")
    assert check.returncode == 0, check.stdout + check.stderr

    again = await stockroom(fresh_database, "seed", "--demo")
    assert again.returncode == 0, again.stderr
    assert "already present" in again.stdout
    assert await _counts(fresh_database) == counts


async def test_seed_without_demo_does_nothing() -> None:
    result = await stockroom("postgresql+asyncpg://unused/unused", "seed")
    assert result.returncode == 2
    assert "pass --demo" in result.stderr
