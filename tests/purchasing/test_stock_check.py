"""`stockroom stock check` verifies on_order against the open purchase orders."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.purchasing.test_concurrency import open_order
from tests.stock.live import live_app
from tests.stock.test_cli import invoke_check


async def test_check_reports_on_order_that_drifts_from_open_purchase_orders(
    fresh_database: str, monkeypatch: Any
) -> None:
    async with live_app(fresh_database) as live:
        manager = await live.client("manager")
        order = await open_order(live, manager, 9)
        await manager.aclose()
        product_id, warehouse_id = order["lines"][0]["product_id"], order["warehouse_id"]

        clean = await asyncio.to_thread(invoke_check, fresh_database, monkeypatch)
        assert clean.exit_code == 0, clean.output
        await live.scalar(
            "UPDATE stock_levels SET on_order = 2 WHERE product_id = :p AND warehouse_id = :w "
            "RETURNING on_order",
            p=product_id,
            w=warehouse_id,
        )
        drifted = await asyncio.to_thread(invoke_check, fresh_database, monkeypatch)

    assert drifted.exit_code == 1
    assert f"product={product_id} warehouse={warehouse_id} reserved=0" in drifted.output
    assert "on_order=2 outstanding=9" in drifted.output
