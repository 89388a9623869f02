"""`stockroom stock check` verifies reserved against the open sales orders."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.sales.test_concurrency import drafts
from tests.stock.live import live_app
from tests.stock.test_cli import invoke_check


async def test_check_reports_reserved_that_drifts_from_open_sales_orders(
    fresh_database: str, monkeypatch: Any
) -> None:
    async with live_app(fresh_database) as live:
        product, (warehouse,) = await live.product_in(10, reorder_point=0)
        staff = await live.client("staff")
        (order,) = await drafts(staff, product, warehouse, 1, 6)
        assert (await staff.post(f"/api/v1/sales-orders/{order['id']}/confirm")).status_code == 200
        ship = {"lines": [{"line_id": order["lines"][0]["id"], "quantity": 2}]}
        assert (
            await staff.post(f"/api/v1/sales-orders/{order['id']}/ship", json=ship)
        ).status_code == 200
        await staff.aclose()

        clean = await asyncio.to_thread(invoke_check, fresh_database, monkeypatch)
        assert clean.exit_code == 0, clean.output
        await live.scalar(
            "UPDATE stock_levels SET reserved = 1 WHERE product_id = :p AND warehouse_id = :w "
            "RETURNING reserved",
            p=product.id,
            w=warehouse.id,
        )
        drifted = await asyncio.to_thread(invoke_check, fresh_database, monkeypatch)

    assert drifted.exit_code == 1
    assert (
        f"product={product.id} warehouse={warehouse.id} reserved=1 unshipped=4 "
        "line_reservations=4 on_order=0 outstanding=0"
    ) in drifted.output
