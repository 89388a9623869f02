"""Posting, reading and reversing ledger movements over the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.events.models import OutboxEvent
from stockroom.stock.models import StockLevel, StockMovement
from tests.conftest import ClientAs
from tests.factories.catalog import make_product, make_warehouse
from tests.factories.stock import make_stock

URL = "/api/v1/stock-movements"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    return body


async def on_hand(session: AsyncSession, product_id: uuid.UUID, warehouse_id: uuid.UUID) -> int:
    value = await session.scalar(
        select(StockLevel.on_hand).where(
            StockLevel.product_id == product_id, StockLevel.warehouse_id == warehouse_id
        )
    )
    return int(value or 0)


async def ledger_sum(session: AsyncSession, product_id: uuid.UUID, warehouse_id: uuid.UUID) -> int:
    value = await session.scalar(
        text(
            "SELECT coalesce(sum(signed_quantity), 0) FROM stock_movements "
            "WHERE product_id = :p AND warehouse_id = :w"
        ),
        {"p": product_id, "w": warehouse_id},
    )
    return int(value or 0)


def movement(
    product: Any, warehouse: Any, type_: str, quantity: int, **extra: Any
) -> dict[str, Any]:
    return {
        "product_id": str(product.id),
        "warehouse_id": str(warehouse.id),
        "type": type_,
        "quantity": quantity,
        **extra,
    }


async def test_first_receipt_creates_the_level_and_defaults_unit_cost(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    manager = await client_as("manager")

    response = await manager.post(URL, json=movement(product, warehouse, "receipt", 12))

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["signed_quantity"] == 12
    assert body["on_hand_after"] == 12
    assert body["unit_cost"] == "4.00"
    assert body["created_by"] == str(manager.user.id)  # type: ignore[attr-defined]
    assert response.headers["location"] == f"{URL}/{body['id']}"
    assert await on_hand(session, product.id, warehouse.id) == 12


async def test_sale_is_signed_negative_and_records_the_sale_price(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    staff = await client_as("staff")

    sale = await staff.post(URL, json=movement(product, warehouse, "sale", 3))
    discounted = await staff.post(
        URL, json=movement(product, warehouse, "sale", 2, unit_price="8.50", reference="POS-1")
    )

    assert sale.status_code == 201, sale.text
    assert sale.json()["signed_quantity"] == -3
    assert sale.json()["unit_price"] == "10.00"
    assert sale.json()["on_hand_after"] == 7
    assert discounted.json()["unit_price"] == "8.50"
    assert discounted.json()["reference"] == "POS-1"
    assert await on_hand(session, product.id, warehouse.id) == 5
    assert await ledger_sum(session, product.id, warehouse.id) == 5


async def test_sale_beyond_stock_is_refused_and_writes_nothing(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 2)
    staff = await client_as("staff")

    response = await staff.post(URL, json=movement(product, warehouse, "sale", 3))

    assert_problem(response, 409, "insufficient_stock")
    assert await on_hand(session, product.id, warehouse.id) == 2
    count = await session.scalar(
        select(text("count(*)"))
        .select_from(StockMovement)
        .where(StockMovement.product_id == product.id)
    )
    assert count == 1


async def test_sale_with_no_level_at_all_is_insufficient_stock(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    staff = await client_as("staff")

    response = await staff.post(URL, json=movement(product, warehouse, "sale", 1))

    assert_problem(response, 409, "insufficient_stock")


@pytest.mark.parametrize(
    ("type_", "quantity", "extra"),
    [
        ("transfer_out", 1, {}),
        ("transfer_in", 1, {}),
        ("count", 1, {}),
        ("sale", 0, {}),
        ("sale", -1, {}),
        ("receipt", -5, {}),
        ("adjustment", 0, {}),
        ("receipt", 1.5, {}),
        ("receipt", "3", {}),
        ("bogus", 1, {}),
        ("receipt", 1, {"unit_price": "1.00"}),
        ("sale", 1, {"unit_cost": "1.00"}),
        ("sale", 1, {"unit_price": "-1.00"}),
        ("sale", 1, {"unit_price": "1.001"}),
        ("sale", 1, {"surprise": True}),
    ],
)
async def test_invalid_movements_are_422(
    client_as: ClientAs, session: AsyncSession, type_: str, quantity: Any, extra: dict[str, Any]
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    admin = await client_as("admin")

    response = await admin.post(URL, json=movement(product, warehouse, type_, quantity, **extra))

    assert_problem(response, 422, "validation_error")
    assert await on_hand(session, product.id, warehouse.id) == 10


async def test_adjustment_is_signed_and_needs_stock_adjust(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    staff = await client_as("staff")
    manager = await client_as("manager")

    refused = await staff.post(URL, json=movement(product, warehouse, "adjustment", -4))
    damage_refused = await staff.post(URL, json=movement(product, warehouse, "damage", 1))
    down = await manager.post(URL, json=movement(product, warehouse, "adjustment", -4))
    up = await manager.post(URL, json=movement(product, warehouse, "adjustment", 2))
    damage = await manager.post(URL, json=movement(product, warehouse, "damage", 1))
    too_far = await manager.post(URL, json=movement(product, warehouse, "adjustment", -8))

    assert_problem(refused, 403, "permission_denied")
    assert_problem(damage_refused, 403, "permission_denied")
    assert down.json()["signed_quantity"] == -4
    assert up.json()["signed_quantity"] == 2
    assert damage.json()["signed_quantity"] == -1
    assert_problem(too_far, 409, "insufficient_stock")
    assert await on_hand(session, product.id, warehouse.id) == 7


@pytest.mark.parametrize("role", ["analyst"])
async def test_roles_without_stock_write_cannot_post(
    client_as: ClientAs, session: AsyncSession, role: str
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    reader = await client_as(role)

    response = await reader.post(URL, json=movement(product, warehouse, "receipt", 1))

    assert_problem(response, 403, "permission_denied")


async def test_a_user_without_roles_cannot_read_movements(client_as: ClientAs) -> None:
    nobody = await client_as()
    assert_problem(await nobody.get(URL), 403, "permission_denied")
    assert_problem(await nobody.get("/api/v1/stock"), 403, "permission_denied")


async def test_anonymous_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_product_or_warehouse_is_404(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    staff = await client_as("staff")
    ghost = type("Ghost", (), {"id": uuid.uuid4()})()

    no_product = await staff.post(URL, json=movement(ghost, warehouse, "receipt", 1))
    no_warehouse = await staff.post(URL, json=movement(product, ghost, "receipt", 1))

    assert_problem(no_product, 404, "not_found")
    assert_problem(no_warehouse, 404, "not_found")


async def test_inactive_product_or_warehouse_is_409(
    client_as: ClientAs, session: AsyncSession
) -> None:
    inactive_product = await make_product(session, is_active=False)
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    closed = await make_warehouse(session, is_active=False)
    staff = await client_as("staff")

    to_inactive = await staff.post(URL, json=movement(inactive_product, warehouse, "receipt", 1))
    to_closed = await staff.post(URL, json=movement(product, closed, "receipt", 1))

    assert_problem(to_inactive, 409, "inactive_product")
    assert_problem(to_closed, 409, "inactive_warehouse")


async def test_unit_cost_is_visible_only_with_costs_read(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    staff = await client_as("staff")
    analyst = await client_as("analyst")

    posted = await staff.post(URL, json=movement(product, warehouse, "receipt", 5))
    movement_id = posted.json()["id"]

    assert "unit_cost" not in posted.json()
    assert "unit_cost" not in (await staff.get(f"{URL}/{movement_id}")).json()
    assert all("unit_cost" not in m for m in (await staff.get(URL)).json()["items"])
    assert (await analyst.get(f"{URL}/{movement_id}")).json()["unit_cost"] == "4.00"


async def test_movements_cannot_be_changed_or_deleted(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    stock = await make_stock(session, product, warehouse, 5)
    admin = await client_as("admin")
    path = f"{URL}/{stock.id}"

    for method in ("PUT", "PATCH", "DELETE"):
        response = await admin.request(method, path, json={"quantity": 1})
        assert_problem(response, 405, "method_not_allowed")
    assert_problem(await admin.request("PUT", URL, json={}), 405, "method_not_allowed")
    assert (await admin.get(path)).json()["quantity"] == 5


async def test_the_database_refuses_to_update_or_delete_a_movement(
    session: AsyncSession,
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    stock = await make_stock(session, product, warehouse, 5)

    for statement in (
        "UPDATE stock_movements SET quantity = 50 WHERE id = :id",
        "DELETE FROM stock_movements WHERE id = :id",
    ):
        savepoint = await session.begin_nested()
        with pytest.raises(DBAPIError, match="append-only"):
            await session.execute(text(statement), {"id": stock.id})
        await savepoint.rollback()


async def test_list_filters_and_orders_newest_first(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    other = await make_product(session)
    warehouse = await make_warehouse(session)
    staff = await client_as("staff")
    ids = []
    for quantity in (5, 6, 7):
        r = await staff.post(URL, json=movement(product, warehouse, "receipt", quantity))
        ids.append(r.json()["id"])
    await staff.post(URL, json=movement(product, warehouse, "sale", 1, reference="INV-9"))
    await staff.post(URL, json=movement(other, warehouse, "receipt", 1))

    receipts = (
        await staff.get(URL, params={"product_id": str(product.id), "type": "receipt"})
    ).json()
    by_reference = (await staff.get(URL, params={"reference": "INV-9"})).json()
    paged = (
        await staff.get(URL, params={"product_id": str(product.id), "page_size": 2, "page": 2})
    ).json()

    assert [m["id"] for m in receipts["items"]] == list(reversed(ids))
    assert receipts["total"] == 3
    assert [m["type"] for m in by_reference["items"]] == ["sale"]
    assert paged["total"] == 4
    assert paged["page"] == 2
    assert len(paged["items"]) == 2
    assert_problem(await staff.get(URL, params={"page_size": 101}), 422, "validation_error")
    assert_problem(await staff.get(URL, params={"type": "nope"}), 422, "validation_error")


async def test_get_unknown_movement_is_404(client_as: ClientAs) -> None:
    staff = await client_as("staff")
    assert_problem(await staff.get(f"{URL}/{uuid.uuid4()}"), 404, "not_found")
    assert_problem(await staff.get(f"{URL}/not-a-uuid"), 422, "validation_error")


async def test_posting_records_a_movement_event_in_the_same_transaction(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    staff = await client_as("staff")

    posted = (await staff.post(URL, json=movement(product, warehouse, "receipt", 3))).json()

    rows = (
        await session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "stock.movement_posted")
        )
    ).all()
    payloads = [r.payload for r in rows if r.payload["data"]["movement_id"] == posted["id"]]
    assert len(payloads) == 1
    data = payloads[0]["data"]
    assert data["signed_quantity"] == 3
    assert data["warehouse_id"] == str(warehouse.id)
    assert "unit_cost" not in data
    assert payloads[0]["actor"]["id"] == str(staff.user.id)  # type: ignore[attr-defined]


async def test_level_low_event_fires_once_per_crossing(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session, reorder_point=5)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 8)
    staff = await client_as("staff")

    for quantity in (2, 1, 1):  # 8 -> 6 -> 5 (crosses) -> 4 (already low)
        await staff.post(URL, json=movement(product, warehouse, "sale", quantity))
    await staff.post(URL, json=movement(product, warehouse, "receipt", 10))  # back up to 14
    await staff.post(URL, json=movement(product, warehouse, "sale", 9))  # 5: crosses again

    rows = (
        await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "stock.level_low"))
    ).all()
    mine = [r.payload["data"] for r in rows if r.payload["data"]["product_id"] == str(product.id)]
    assert [d["on_hand"] for d in mine] == [5, 5]


async def test_reversal_compensates_once(client_as: ClientAs, session: AsyncSession) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    staff = await client_as("staff")
    manager = await client_as("manager")
    sale = (await staff.post(URL, json=movement(product, warehouse, "sale", 4))).json()

    forbidden = await staff.post(f"{URL}/{sale['id']}/reverse")
    reversal = await manager.post(f"{URL}/{sale['id']}/reverse", json={"note": "wrong till"})
    again = await manager.post(f"{URL}/{sale['id']}/reverse")
    of_reversal = await manager.post(f"{URL}/{reversal.json()['id']}/reverse")
    missing = await manager.post(f"{URL}/{uuid.uuid4()}/reverse")

    assert_problem(forbidden, 403, "permission_denied")
    assert reversal.status_code == 201, reversal.text
    body = reversal.json()
    assert body["reverses_id"] == sale["id"]
    assert body["signed_quantity"] == 4
    assert body["type"] == "adjustment"
    assert body["note"] == "wrong till"
    assert_problem(again, 409, "already_reversed")
    assert_problem(of_reversal, 409, "not_reversible")
    assert_problem(missing, 404, "not_found")
    assert await on_hand(session, product.id, warehouse.id) == 10
    assert await ledger_sum(session, product.id, warehouse.id) == 10


async def test_reversal_that_would_oversell_is_refused(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    receipt = await make_stock(session, product, warehouse, 5)
    manager = await client_as("manager")
    await manager.post(URL, json=movement(product, warehouse, "sale", 3))

    response = await manager.post(f"{URL}/{receipt.id}/reverse")

    assert_problem(response, 409, "insufficient_stock")
    assert await on_hand(session, product.id, warehouse.id) == 2


async def test_a_receipt_reversed_twice_is_already_reversed_not_out_of_stock(
    client_as: ClientAs, session: AsyncSession
) -> None:
    # Unlike a sale, a receipt cannot be reversed a second time for lack of stock alone (after
    # the first reversal on hand is 0), so only the already-reversed check gives this answer.
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    manager = await client_as("manager")
    receipt = (await manager.post(URL, json=movement(product, warehouse, "receipt", 5))).json()

    first = await manager.post(f"{URL}/{receipt['id']}/reverse")
    second = await manager.post(f"{URL}/{receipt['id']}/reverse")

    assert first.status_code == 201, first.text
    assert first.json()["signed_quantity"] == -5
    assert_problem(second, 409, "already_reversed")
    assert await on_hand(session, product.id, warehouse.id) == 0
    assert await ledger_sum(session, product.id, warehouse.id) == 0


async def test_stock_levels_list_and_filters(client_as: ClientAs, session: AsyncSession) -> None:
    product = await make_product(session, reorder_point=5)
    warehouse = await make_warehouse(session)
    other = await make_warehouse(session)
    await make_stock(session, product, warehouse, 3)
    await make_stock(session, product, other, 30)
    staff = await client_as("staff")

    levels = (await staff.get("/api/v1/stock", params={"product_id": str(product.id)})).json()
    low = (
        await staff.get(
            "/api/v1/stock", params={"product_id": str(product.id), "below_reorder": "true"}
        )
    ).json()
    one = (await staff.get("/api/v1/stock", params={"warehouse_id": str(other.id)})).json()

    assert levels["total"] == 2
    assert {r["on_hand"] for r in levels["items"]} == {3, 30}
    assert levels["items"][0].keys() >= {
        "product_id",
        "sku",
        "warehouse_id",
        "on_hand",
        "in_transit_out",
        "reorder_point",
    }
    assert [(r["warehouse_id"], r["on_hand"]) for r in low["items"]] == [(str(warehouse.id), 3)]
    assert [r["on_hand"] for r in one["items"]] == [30]


async def test_low_stock_products_use_the_total_over_warehouses(
    client_as: ClientAs, session: AsyncSession
) -> None:
    low = await make_product(session, reorder_point=10)
    fine = await make_product(session, reorder_point=10)
    retired = await make_product(session, reorder_point=10, is_active=False)
    first = await make_warehouse(session)
    second = await make_warehouse(session)
    await make_stock(session, low, first, 4)
    await make_stock(session, low, second, 6)  # total 10: at the reorder point
    await make_stock(session, fine, first, 6)
    await make_stock(session, fine, second, 5)  # total 11
    staff = await client_as("staff")
    analyst_less = await client_as()

    response = await staff.get("/api/v1/products/low-stock", params={"page_size": 100})

    assert response.status_code == 200, response.text
    ids = {p["id"] for p in response.json()["items"]}
    assert str(low.id) in ids
    assert str(fine.id) not in ids
    assert str(retired.id) not in ids
    row = next(p for p in response.json()["items"] if p["id"] == str(low.id))
    assert row["on_hand"] == 10
    assert_problem(await analyst_less.get("/api/v1/products/low-stock"), 403, "permission_denied")


async def test_stock_history_lists_the_products_movements(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    other = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, other, warehouse, 1)
    staff = await client_as("staff")
    await staff.post(URL, json=movement(product, warehouse, "receipt", 5))
    await staff.post(URL, json=movement(product, warehouse, "sale", 2))

    history = await staff.get(f"/api/v1/products/{product.id}/stock-history")
    missing = await staff.get(f"/api/v1/products/{uuid.uuid4()}/stock-history")

    assert history.status_code == 200, history.text
    assert [m["type"] for m in history.json()["items"]] == ["sale", "receipt"]
    assert_problem(missing, 404, "not_found")
