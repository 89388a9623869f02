"""Reorder suggestions and the draft purchase orders made from them.

The world, at warehouse W (and W2, and a closed warehouse):
- hammer (Acme, reorder point 10, quantity 20): W on hand 12 with 5 reserved by a confirmed sales
  order -> 7 -> suggest 30 - 7 = 23; W2 on hand 15 -> above the point, nothing.
- nail (Bolt, 5 / 10): W on hand 2 and 3 on a submitted purchase order -> 5, at the point ->
  suggest 15 - 5 = 10.
- glue (no supplier, 4 / 6): W on hand 1 -> suggest 9; no order can be made for it.
- not suggested: a retired product low at W, hammer at the closed warehouse, a product with
  reorder point and quantity 0 and nothing on hand (nothing to suggest), and a product never kept
  anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog.models import Product, Supplier, Warehouse
from tests.conftest import ClientAs
from tests.factories.auth import outbox_payloads
from tests.factories.catalog import make_product, make_supplier, make_warehouse
from tests.factories.orders import level_of, make_role
from tests.factories.stock import make_stock
from tests.stock.test_movements import assert_problem

URL = "/api/v1/reorder-suggestions"
ORDERS = f"{URL}/purchase-orders"


@dataclass
class World:
    w: Warehouse
    w2: Warehouse
    closed: Warehouse
    acme: Supplier
    bolt: Supplier
    hammer: Product
    nail: Product
    glue: Product
    session: AsyncSession


async def _ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.fixture
async def world(client_as: ClientAs, session: AsyncSession) -> World:
    w, w2 = await make_warehouse(session), await make_warehouse(session)
    closed = await make_warehouse(session, is_active=False)
    acme, bolt = await make_supplier(session), await make_supplier(session)
    hammer = await make_product(
        session, sku="R-HAMMER", supplier_id=acme.id, reorder_point=10, reorder_quantity=20
    )
    nail = await make_product(
        session,
        sku="R-NAIL",
        supplier_id=bolt.id,
        reorder_point=5,
        reorder_quantity=10,
        cost_price="0.10",
        sale_price="0.20",
    )
    glue = await make_product(session, sku="R-GLUE", reorder_point=4, reorder_quantity=6)
    retired = await make_product(session, supplier_id=acme.id, reorder_point=10, is_active=False)
    unmanaged = await make_product(
        session, supplier_id=acme.id, reorder_point=0, reorder_quantity=0
    )
    await make_product(session, supplier_id=acme.id, reorder_point=3)  # never kept anywhere
    await make_stock(session, hammer, w, 12)
    await make_stock(session, hammer, w2, 15)
    await make_stock(session, hammer, closed, 1)
    await make_stock(session, nail, w, 2)
    await make_stock(session, glue, w, 1)
    await make_stock(session, retired, w, 1)
    await make_stock(session, unmanaged, w, 1)
    manager = await client_as("manager")
    await _ok(
        await manager.post(
            "/api/v1/stock-movements",
            json={
                "product_id": str(unmanaged.id),
                "warehouse_id": str(w.id),
                "type": "sale",
                "quantity": 1,
            },
        )
    )
    sale = await _ok(
        await manager.post(
            "/api/v1/sales-orders",
            json={
                "warehouse_id": str(w.id),
                "customer": {"name": "Ann"},
                "lines": [{"product_id": str(hammer.id), "quantity": 5}],
            },
        )
    )
    await _ok(await manager.post(f"/api/v1/sales-orders/{sale['id']}/confirm"))
    order = await _ok(
        await manager.post(
            "/api/v1/purchase-orders",
            json={
                "supplier_id": str(bolt.id),
                "warehouse_id": str(w.id),
                "lines": [{"product_id": str(nail.id), "quantity": 3}],
            },
        )
    )
    await _ok(await manager.post(f"/api/v1/purchase-orders/{order['id']}/submit"))
    return World(w, w2, closed, acme, bolt, hammer, nail, glue, session)


def row(
    world: World,
    product: Product,
    supplier: Supplier | None,
    on_hand: int,
    reserved: int,
    on_order: int,
    suggested: int,
) -> dict[str, Any]:
    return {
        "product_id": str(product.id),
        "sku": product.sku,
        "product_name": product.name,
        "warehouse_id": str(world.w.id),
        "warehouse_code": world.w.code,
        "supplier_id": str(supplier.id) if supplier else None,
        "on_hand": on_hand,
        "reserved": reserved,
        "on_order": on_order,
        "reorder_point": product.reorder_point,
        "reorder_quantity": product.reorder_quantity,
        "suggested_quantity": suggested,
    }


async def test_suggestions_count_reserved_and_on_order(client_as: ClientAs, world: World) -> None:
    staff = await client_as("staff")  # purchasing:read
    everywhere = await _ok(await staff.get(URL))
    at_w = await _ok(await staff.get(URL, params={"warehouse_id": str(world.w.id)}))
    at_w2 = await _ok(await staff.get(URL, params={"warehouse_id": str(world.w2.id)}))
    from_bolt = await _ok(await staff.get(URL, params={"supplier_id": str(world.bolt.id)}))

    expected = [  # by sku
        row(world, world.glue, None, 1, 0, 0, 9),
        row(world, world.hammer, world.acme, 12, 5, 0, 23),
        row(world, world.nail, world.bolt, 2, 0, 3, 10),
    ]
    assert at_w == {"items": expected, "total": 3, "page": 1, "page_size": 20}
    assert everywhere["items"] == expected
    assert at_w2["items"] == []
    assert from_bolt["items"] == [expected[2]]
    second = await _ok(
        await staff.get(URL, params={"warehouse_id": str(world.w.id), "page": 2, "page_size": 2})
    )
    assert (second["items"], second["total"]) == ([expected[2]], 3)


async def test_reading_suggestions_needs_purchasing_read(
    client_as: ClientAs, session: AsyncSession
) -> None:
    clerk = await client_as(await make_role(session, "catalog:read", "stock:read"))
    problem = assert_problem(await clerk.get(URL), 403, "permission_denied")
    assert "purchasing:read" in problem["detail"]
    staff = await client_as("staff")
    assert_problem(await staff.get(URL, params={"page_size": 101}), 422, "validation_error")
    assert_problem(await staff.get(URL, params={"warehouse_id": "W1"}), 422, "validation_error")


async def test_ordering_makes_one_draft_per_supplier_and_warehouse(
    client_as: ClientAs, world: World
) -> None:
    manager = await client_as("manager")

    response = await manager.post(ORDERS, json={"warehouse_id": str(world.w.id)})

    assert response.status_code == 201, response.text
    body = response.json()
    orders = sorted(body["purchase_orders"], key=lambda o: o["supplier_id"] != str(world.acme.id))
    assert [(o["supplier_id"], o["warehouse_id"], o["status"]) for o in orders] == [
        (str(world.acme.id), str(world.w.id), "draft"),
        (str(world.bolt.id), str(world.w.id), "draft"),
    ]
    assert [
        [(line["product_id"], line["quantity"], line["unit_cost"]) for line in o["lines"]]
        for o in orders
    ] == [[(str(world.hammer.id), 23, "4.00")], [(str(world.nail.id), 10, "0.10")]]
    assert [o["total_cost"] for o in orders] == ["92.00", "1.00"]
    assert body["skipped"] == [row(world, world.glue, None, 1, 0, 0, 9)]
    created = await outbox_payloads(world.session, "purchase_order.created")
    assert {e["entity"]["id"] for e in created} >= {o["id"] for o in orders}
    # Drafts are not on order: the suggestions stand until the orders are submitted.
    still = await _ok(await manager.get(URL, params={"warehouse_id": str(world.w.id)}))
    assert still["total"] == 3
    await _ok(await manager.post(f"/api/v1/purchase-orders/{orders[0]['id']}/submit"))
    after = await _ok(await manager.get(URL, params={"warehouse_id": str(world.w.id)}))
    assert [r["sku"] for r in after["items"]] == ["R-GLUE", "R-NAIL"]
    assert await level_of(world.session, world.hammer.id, world.w.id) == {
        "on_hand": 12,
        "reserved": 5,
        "on_order": 23,
    }


async def test_ordering_for_one_supplier_and_with_nothing_to_order(
    client_as: ClientAs, world: World
) -> None:
    manager = await client_as("manager")
    bolt = await _ok(await manager.post(ORDERS, json={"supplier_id": str(world.bolt.id)}))
    nothing = await _ok(await manager.post(ORDERS, json={"warehouse_id": str(world.w2.id)}))

    assert [o["supplier_id"] for o in bolt["purchase_orders"]] == [str(world.bolt.id)]
    assert bolt["skipped"] == []
    assert nothing == {"purchase_orders": [], "skipped": []}
    assert_problem(await manager.post(ORDERS, json={"warehouse_id": "x"}), 422, "validation_error")
    assert_problem(await manager.post(ORDERS, json={"extra": 1}), 422, "validation_error")


async def test_ordering_needs_purchasing_write_and_hides_costs_without_costs_read(
    client_as: ClientAs, world: World, session: AsyncSession
) -> None:
    for role in ("staff", "analyst"):
        reader = await client_as(role)
        problem = assert_problem(await reader.post(ORDERS, json={}), 403, "permission_denied")
        assert "purchasing:write" in problem["detail"]
    buyer = await client_as(await make_role(session, "purchasing:read", "purchasing:write"))

    body = await _ok(await buyer.post(ORDERS, json={"warehouse_id": str(world.w.id)}))

    assert len(body["purchase_orders"]) == 2
    for order in body["purchase_orders"]:
        assert "total_cost" not in order
        assert all("unit_cost" not in line for line in order["lines"])


async def test_ordering_is_idempotent_with_a_key(client_as: ClientAs, world: World) -> None:
    manager = await client_as("manager")
    headers = {"Idempotency-Key": "reorder-1"}
    first = await manager.post(ORDERS, json={"warehouse_id": str(world.w.id)}, headers=headers)
    again = await manager.post(ORDERS, json={"warehouse_id": str(world.w.id)}, headers=headers)
    other = await manager.post(ORDERS, json={"supplier_id": str(world.bolt.id)}, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    listed = await _ok(
        await manager.get("/api/v1/purchase-orders", params={"warehouse_id": str(world.w.id)})
    )
    assert listed["total"] == 3  # the submitted nail order and the two drafts, made once
    assert_problem(other, 422, "idempotency_key_reused")


async def test_ordering_skips_products_of_an_inactive_supplier(
    client_as: ClientAs, world: World
) -> None:
    manager = await client_as("manager")
    deactivated = await manager.patch(
        f"/api/v1/suppliers/{world.bolt.id}", json={"is_active": False}
    )
    assert deactivated.status_code == 200, deactivated.text
    nail = row(world, world.nail, world.bolt, 2, 0, 3, 10)

    listed = await _ok(await manager.get(URL, params={"warehouse_id": str(world.w.id)}))
    body = await _ok(await manager.post(ORDERS, json={"warehouse_id": str(world.w.id)}))
    only_bolt = await _ok(await manager.post(ORDERS, json={"supplier_id": str(world.bolt.id)}))

    # Still suggested (the level is short), but no order goes to a supplier no longer dealt with.
    assert nail in listed["items"]
    assert [o["supplier_id"] for o in body["purchase_orders"]] == [str(world.acme.id)]
    assert body["skipped"] == [row(world, world.glue, None, 1, 0, 0, 9), nail]
    assert only_bolt == {"purchase_orders": [], "skipped": [nail]}
