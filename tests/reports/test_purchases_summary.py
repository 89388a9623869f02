"""GET /reports/purchases-summary against a hand-computed set of receipts, to the cent.

- Suppliers Acme and Bolt; warehouse W; hammer (supplier Bolt, cost 4.00), nail (no supplier).
- PO from Acme at W: hammer 10 at the default 4.00, nail 100 at 0.05; received 6 + 100, then 4.
- A direct receipt of 5 hammers at 5.00 (Bolt: the product's supplier).
- A direct receipt of 50 nails at 0.10, reversed (no supplier: `none`, nets to nothing).
- A sale of 3 hammers, which is no purchase.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ClientAs
from tests.factories.catalog import make_product, make_supplier, make_warehouse
from tests.factories.orders import make_role
from tests.stock.test_movements import assert_problem

URL = "/api/v1/reports/purchases-summary"


async def _ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.fixture
async def purchases(client_as: ClientAs, session: AsyncSession) -> dict[str, str]:
    acme = await make_supplier(session, name="Acme purchases")
    bolt = await make_supplier(session, name="Bolt purchases")
    warehouse = await make_warehouse(session)
    hammer = await make_product(session, name="Hammer", supplier_id=bolt.id, cost_price="4.00")
    nail = await make_product(session, name="Nail", cost_price="0.10", sale_price="0.20")
    manager = await client_as("manager")
    order = await _ok(
        await manager.post(
            "/api/v1/purchase-orders",
            json={
                "supplier_id": str(acme.id),
                "warehouse_id": str(warehouse.id),
                "lines": [
                    {"product_id": str(hammer.id), "quantity": 10},
                    {"product_id": str(nail.id), "quantity": 100, "unit_cost": "0.05"},
                ],
            },
        )
    )
    po = f"/api/v1/purchase-orders/{order['id']}"
    hammer_line, nail_line = (line["id"] for line in order["lines"])
    await _ok(await manager.post(f"{po}/submit"))
    first = [{"line_id": hammer_line, "quantity": 6}, {"line_id": nail_line, "quantity": 100}]
    await _ok(await manager.post(f"{po}/receive", json={"lines": first}))
    rest = [{"line_id": hammer_line, "quantity": 4}]
    assert (await _ok(await manager.post(f"{po}/receive", json={"lines": rest})))["status"] == (
        "received"
    )

    def movement(product: Any, type_: str, quantity: int, **extra: str) -> dict[str, Any]:
        return {
            "product_id": str(product.id),
            "warehouse_id": str(warehouse.id),
            "type": type_,
            "quantity": quantity,
            **extra,
        }

    await _ok(
        await manager.post(
            "/api/v1/stock-movements", json=movement(hammer, "receipt", 5, unit_cost="5.00")
        )
    )
    nails = await _ok(
        await manager.post(
            "/api/v1/stock-movements", json=movement(nail, "receipt", 50, unit_cost="0.10")
        )
    )
    await _ok(await manager.post(f"/api/v1/stock-movements/{nails['id']}/reverse"))
    await _ok(await manager.post("/api/v1/stock-movements", json=movement(hammer, "sale", 3)))
    return {
        "acme": str(acme.id),
        "bolt": str(bolt.id),
        "warehouse": str(warehouse.id),
        "hammer": str(hammer.id),
        "nail": str(nail.id),
    }


def _window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
    }


async def _summary(c: httpx.AsyncClient, group_by: str, **params: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await _ok(
        await c.get(URL, params={"group_by": group_by, **_window(), **params})
    )
    return rows


async def test_purchases_by_supplier_count_order_receipts_and_direct_receipts(
    client_as: ClientAs, purchases: dict[str, str]
) -> None:
    analyst = await client_as("analyst")
    rows = await _summary(analyst, "supplier")
    assert [r for r in rows if r["key"] in (purchases["acme"], purchases["bolt"], "none")] == [
        {
            "key": purchases["acme"],
            "label": "Acme purchases",
            "units": 110,
            "purchase_orders": 1,
            "cost": "45.00",  # 10 x 4.00 + 100 x 0.05
        },
        {
            "key": purchases["bolt"],
            "label": "Bolt purchases",
            "units": 5,
            "purchase_orders": 0,
            "cost": "25.00",
        },
        {"key": "none", "label": "No supplier", "units": 0, "purchase_orders": 0, "cost": "0.00"},
    ]


async def test_purchases_by_product_warehouse_and_day(
    client_as: ClientAs, purchases: dict[str, str]
) -> None:
    analyst = await client_as("analyst")
    by_product = await _summary(analyst, "product")
    by_warehouse = await _summary(analyst, "warehouse")
    by_day = await _summary(analyst, "day")

    # Most units first.
    assert [r for r in by_product if r["key"] in (purchases["hammer"], purchases["nail"])] == [
        {
            "key": purchases["nail"],
            "label": "Nail",
            "units": 100,
            "purchase_orders": 1,
            "cost": "5.00",
        },
        {
            "key": purchases["hammer"],
            "label": "Hammer",
            "units": 15,
            "purchase_orders": 1,
            "cost": "65.00",
        },
    ]
    [warehouse] = [r for r in by_warehouse if r["key"] == purchases["warehouse"]]
    assert (warehouse["units"], warehouse["purchase_orders"], warehouse["cost"]) == (
        115,
        1,
        "70.00",
    )
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert [r["key"] for r in by_day] == sorted(r["key"] for r in by_day)
    assert any(r["key"] == today and r["units"] >= 115 for r in by_day)


async def test_the_window_excludes_what_falls_outside(
    client_as: ClientAs, purchases: dict[str, str]
) -> None:
    analyst = await client_as("analyst")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    rows = await _ok(await analyst.get(URL, params={"group_by": "supplier", "from": later}))
    assert all(r["key"] != purchases["acme"] for r in rows)


async def test_costs_only_with_costs_read(
    client_as: ClientAs, purchases: dict[str, str], session: AsyncSession
) -> None:
    reporter = await client_as(await make_role(session, "reports:read"))
    rows = await _summary(reporter, "supplier")
    [acme] = [r for r in rows if r["key"] == purchases["acme"]]
    assert acme == {
        "key": purchases["acme"],
        "label": "Acme purchases",
        "units": 110,
        "purchase_orders": 1,
    }
    assert all("cost" not in r for r in rows)


async def test_purchases_summary_refusals_and_validation(
    client_as: ClientAs, session: AsyncSession
) -> None:
    staff = await client_as("staff")  # no reports:read
    denied = assert_problem(await staff.get(URL), 403, "permission_denied")
    assert "reports:read" in denied["detail"]
    analyst = await client_as("analyst")
    assert_problem(await analyst.get(URL, params={"group_by": "category"}), 422, "validation_error")
    assert_problem(
        await analyst.get(URL, params={"from": "2021-01-01", "to": "2020-01-01"}),
        422,
        "validation_error",
    )
    anonymous = await client_as()
    anonymous.headers.pop("Authorization", None)
    assert (await anonymous.get(URL)).status_code == 401
