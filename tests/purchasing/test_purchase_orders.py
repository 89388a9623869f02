"""Purchase orders: draft, submit, receive in parts, cancel or close; costs only with costs:read."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog.models import Product, Supplier, Warehouse
from tests.conftest import ClientAs
from tests.factories.auth import outbox_payloads
from tests.factories.catalog import make_product, make_supplier, make_warehouse
from tests.factories.orders import level_of, make_role
from tests.stock.test_movements import assert_problem, ledger_sum

URL = "/api/v1/purchase-orders"


def order_body(
    supplier: Supplier, warehouse: Warehouse, *lines: tuple[Product, int], **extra: Any
) -> dict[str, Any]:
    return {
        "supplier_id": str(supplier.id),
        "warehouse_id": str(warehouse.id),
        "lines": [{"product_id": str(p.id), "quantity": q} for p, q in lines],
        **extra,
    }


class World:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def build(self) -> World:
        self.supplier = await make_supplier(self.session)
        self.warehouse = await make_warehouse(self.session)
        self.a = await make_product(self.session, cost_price="3.50")
        self.b = await make_product(self.session, cost_price="1.25")
        return self


@pytest.fixture
async def world(session: AsyncSession) -> World:
    return await World(session).build()


async def create(c: httpx.AsyncClient, w: World, qa: int = 10, qb: int = 4) -> dict[str, Any]:
    response = await c.post(URL, json=order_body(w.supplier, w.warehouse, (w.a, qa), (w.b, qb)))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def submitted(c: httpx.AsyncClient, w: World, qa: int = 10, qb: int = 4) -> dict[str, Any]:
    order = await create(c, w, qa, qb)
    response = await c.post(f"{URL}/{order['id']}/submit")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def receipt(order: dict[str, Any], *quantities: int) -> dict[str, Any]:
    return {
        "lines": [
            {"line_id": line["id"], "quantity": q}
            for line, q in zip(order["lines"], quantities, strict=False)
            if q
        ]
    }


async def test_create_makes_a_numbered_draft_with_costs_defaulting_to_cost_price(
    client_as: ClientAs, world: World
) -> None:
    manager = await client_as("manager")
    response = await manager.post(
        URL,
        json=order_body(
            world.supplier, world.warehouse, (world.a, 10), (world.b, 4), reference="Q-7"
        ),
    )
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "draft"
    assert order["number"].startswith("PO-")
    assert len(order["number"]) == 9
    assert response.headers["location"] == f"{URL}/{order['id']}"
    assert response.headers["etag"] == f'"{order["version"]}"'
    assert [
        (line["quantity"], line["received_quantity"], line["unit_cost"]) for line in order["lines"]
    ] == [(10, 0, "3.50"), (4, 0, "1.25")]
    assert order["total_cost"] == "40.00"
    again = await create(manager, world)
    assert int(again["number"][3:]) > int(order["number"][3:])
    # A draft is not on order yet.
    assert await level_of(world.session, world.a.id, world.warehouse.id) is None


async def test_costs_are_hidden_without_costs_read(client_as: ClientAs, world: World) -> None:
    manager = await client_as("manager")
    order = await create(manager, world)
    staff = await client_as("staff")

    detail = (await staff.get(f"{URL}/{order['id']}")).json()
    listed = (await staff.get(URL, params={"supplier_id": str(world.supplier.id)})).json()

    assert "total_cost" not in detail
    assert all("unit_cost" not in line for line in detail["lines"])
    assert listed["total"] == 1
    assert "total_cost" not in listed["items"][0]
    assert all("unit_cost" not in line for line in listed["items"][0]["lines"])
    analyst = await client_as("analyst")
    assert (await analyst.get(f"{URL}/{order['id']}")).json()["total_cost"] == "40.00"


async def test_setting_a_cost_needs_costs_read(
    client_as: ClientAs, world: World, session: AsyncSession
) -> None:
    buyer = await client_as(await make_role(session, "purchasing:read", "purchasing:write"))
    body = order_body(world.supplier, world.warehouse, (world.a, 1))
    body["lines"][0]["unit_cost"] = "2.00"

    refused = await buyer.post(URL, json=body)
    body["lines"][0].pop("unit_cost")
    allowed = await buyer.post(URL, json=body)

    assert "costs:read" in assert_problem(refused, 403, "permission_denied")["detail"]
    assert allowed.status_code == 201, allowed.text
    assert "unit_cost" not in allowed.json()["lines"][0]
    patched = await buyer.patch(
        f"{URL}/{allowed.json()['id']}",
        json={"lines": [{"product_id": str(world.a.id), "quantity": 2, "unit_cost": "9.00"}]},
    )
    assert_problem(patched, 403, "permission_denied")


@pytest.mark.parametrize("role", ["staff", "analyst"])
async def test_roles_without_purchasing_write_cannot_change_orders(
    client_as: ClientAs, world: World, role: str
) -> None:
    manager = await client_as("manager")
    order = await create(manager, world)
    reader = await client_as(role)

    assert (await reader.get(f"{URL}/{order['id']}")).status_code == 200
    assert_problem(
        await reader.post(URL, json=order_body(world.supplier, world.warehouse, (world.a, 1))),
        403,
        "permission_denied",
    )
    assert_problem(
        await reader.patch(f"{URL}/{order['id']}", json={"note": "x"}), 403, "permission_denied"
    )
    for action in ("submit", "cancel"):
        assert_problem(await reader.post(f"{URL}/{order['id']}/{action}"), 403, "permission_denied")
    assert_problem(
        await reader.post(f"{URL}/{order['id']}/receive", json=receipt(order, 1)),
        403,
        "permission_denied",
    )


async def test_a_user_without_purchasing_read_cannot_list(
    client_as: ClientAs, session: AsyncSession
) -> None:
    nobody = await client_as(await make_role(session, "catalog:read"))
    assert_problem(await nobody.get(URL), 403, "permission_denied")
    assert_problem(
        await nobody.get(f"{URL}/{'0' * 8}-0000-0000-0000-{'0' * 12}"), 403, "permission_denied"
    )


async def test_line_rules_are_422(client_as: ClientAs, world: World) -> None:
    manager = await client_as("manager")
    twice = order_body(world.supplier, world.warehouse, (world.a, 1), (world.a, 2))
    empty = order_body(world.supplier, world.warehouse)
    zero = order_body(world.supplier, world.warehouse, (world.a, 0))
    too_many = order_body(world.supplier, world.warehouse)
    too_many["lines"] = [{"product_id": str(world.a.id), "quantity": 1}] * 501

    for body in (twice, empty, zero, too_many):
        assert_problem(await manager.post(URL, json=body), 422, "validation_error")


async def test_unknown_references_are_404_and_inactive_ones_409(
    client_as: ClientAs, world: World, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    closed = await make_warehouse(session, is_active=False)
    retired = await make_product(session, is_active=False)
    other = await make_supplier(session)
    await session.execute(text("DELETE FROM suppliers WHERE id = :id"), {"id": other.id})

    assert_problem(
        await manager.post(URL, json=order_body(other, world.warehouse, (world.a, 1))),
        404,
        "not_found",
    )
    assert_problem(
        await manager.post(URL, json=order_body(world.supplier, closed, (world.a, 1))),
        409,
        "inactive_warehouse",
    )
    assert_problem(
        await manager.post(URL, json=order_body(world.supplier, world.warehouse, (retired, 1))),
        409,
        "inactive_product",
    )
    assert_problem(await manager.get(f"{URL}/{other.id}"), 404, "not_found")


async def deactivate(c: httpx.AsyncClient, supplier: Supplier) -> None:
    response = await c.patch(f"/api/v1/suppliers/{supplier.id}", json={"is_active": False})
    assert response.status_code == 200, response.text


async def test_an_inactive_supplier_takes_no_new_or_changed_orders(
    client_as: ClientAs, world: World, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    draft = await create(manager, world)
    active = await make_supplier(session)
    retired = await make_supplier(session)
    await deactivate(manager, retired)

    refused = await manager.post(URL, json=order_body(retired, world.warehouse, (world.a, 1)))
    moved_to_retired = await manager.patch(
        f"{URL}/{draft['id']}", json={"supplier_id": str(retired.id)}
    )

    assert_problem(refused, 409, "inactive_supplier")
    assert_problem(moved_to_retired, 409, "inactive_supplier")
    count = await session.scalar(
        text("SELECT count(*) FROM purchase_orders WHERE supplier_id = :id"), {"id": retired.id}
    )
    assert count == 0

    # A draft whose supplier is deactivated afterwards cannot be changed either (not even its
    # note), only moved to an active supplier or cancelled.
    second = await create(manager, world)
    await deactivate(manager, world.supplier)
    assert_problem(
        await manager.patch(f"{URL}/{draft['id']}", json={"note": "still?"}),
        409,
        "inactive_supplier",
    )
    assert (await manager.get(f"{URL}/{draft['id']}")).json()["note"] is None
    moved = await manager.patch(f"{URL}/{draft['id']}", json={"supplier_id": str(active.id)})
    assert moved.status_code == 200, moved.text
    assert moved.json()["supplier_id"] == str(active.id)
    cancelled = await manager.post(f"{URL}/{second['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"


async def test_patch_changes_a_draft_with_if_match_and_replaces_lines(
    client_as: ClientAs, world: World
) -> None:
    manager = await client_as("manager")
    order = await create(manager, world)
    etag = f'"{order["version"]}"'

    patched = await manager.patch(
        f"{URL}/{order['id']}",
        json={"note": "call first", "lines": [{"product_id": str(world.b.id), "quantity": 7}]},
        headers={"If-Match": etag},
    )
    stale = await manager.patch(
        f"{URL}/{order['id']}", json={"note": "late"}, headers={"If-Match": etag}
    )

    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["note"] == "call first"
    assert [(line["product_id"], line["quantity"]) for line in body["lines"]] == [
        (str(world.b.id), 7)
    ]
    assert body["version"] > order["version"]
    assert patched.headers["etag"] == f'"{body["version"]}"'
    assert_problem(stale, 412, "precondition_failed")
    events = await outbox_payloads(world.session, "purchase_order.updated")
    assert events[-1]["changes"]["note"] == {"old": None, "new": "call first"}
    assert "lines" in events[-1]["changes"]


async def test_submit_counts_the_order_as_on_order_once(client_as: ClientAs, world: World) -> None:
    manager = await client_as("manager")
    order = await submitted(manager, world)

    assert order["status"] == "ordered"
    assert order["submitted_at"] is not None
    assert await level_of(world.session, world.a.id, world.warehouse.id) == {
        "on_hand": 0,
        "reserved": 0,
        "on_order": 10,
    }
    again = await manager.post(f"{URL}/{order['id']}/submit")
    assert_problem(again, 409, "invalid_transition")
    assert_problem(
        await manager.patch(f"{URL}/{order['id']}", json={"note": "x"}), 409, "invalid_transition"
    )
    assert (await level_of(world.session, world.a.id, world.warehouse.id) or {})["on_order"] == 10


async def test_receive_in_parts_posts_linked_receipts_at_the_line_cost(
    client_as: ClientAs, world: World
) -> None:
    manager = await client_as("manager")
    order = await submitted(manager, world)

    first = await manager.post(f"{URL}/{order['id']}/receive", json=receipt(order, 6, 4))
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "partially_received"
    assert [line["received_quantity"] for line in first.json()["lines"]] == [6, 4]
    assert await level_of(world.session, world.a.id, world.warehouse.id) == {
        "on_hand": 6,
        "reserved": 0,
        "on_order": 4,
    }
    assert await level_of(world.session, world.b.id, world.warehouse.id) == {
        "on_hand": 4,
        "reserved": 0,
        "on_order": 0,
    }
    rest = await manager.post(f"{URL}/{order['id']}/receive", json=receipt(order, 4))
    assert rest.status_code == 200, rest.text
    assert rest.json()["status"] == "received"

    movements = (
        await manager.get(
            "/api/v1/stock-movements",
            params={"product_id": str(world.a.id), "warehouse_id": str(world.warehouse.id)},
        )
    ).json()["items"]
    assert sorted((m["type"], m["quantity"], m["unit_cost"]) for m in movements) == [
        ("receipt", 4, "3.50"),
        ("receipt", 6, "3.50"),
    ]
    linked = await world.session.scalar(
        text("SELECT count(*) FROM stock_movements WHERE purchase_order_id = :id"),
        {"id": order["id"]},
    )
    assert linked == 3
    assert await ledger_sum(world.session, world.a.id, world.warehouse.id) == 10
    assert_problem(
        await manager.post(f"{URL}/{order['id']}/receive", json=receipt(order, 1)),
        409,
        "invalid_transition",
    )
    received = await outbox_payloads(world.session, "purchase_order.received")
    assert [e["changes"]["status"]["new"] for e in received[-2:]] == [
        "partially_received",
        "received",
    ]
    posted = await outbox_payloads(world.session, "stock.movement_posted")
    assert {e["data"]["purchase_order_id"] for e in posted[-3:]} == {order["id"]}
    assert all("unit_cost" not in e["data"] for e in posted)


async def test_over_receipt_on_the_last_line_writes_nothing(
    client_as: ClientAs, world: World
) -> None:
    manager = await client_as("manager")
    order = await submitted(manager, world)

    response = await manager.post(f"{URL}/{order['id']}/receive", json=receipt(order, 3, 5))

    problem = assert_problem(response, 409, "over_receipt")
    assert problem["lines"] == [
        {"line_id": order["lines"][1]["id"], "outstanding": 4, "requested": 5}
    ]
    current = (await manager.get(f"{URL}/{order['id']}")).json()
    assert current["status"] == "ordered"
    assert [line["received_quantity"] for line in current["lines"]] == [0, 0]
    assert await ledger_sum(world.session, world.a.id, world.warehouse.id) == 0
    assert (await level_of(world.session, world.a.id, world.warehouse.id) or {})["on_order"] == 10


async def test_receive_refuses_a_line_of_another_order_and_a_draft(
    client_as: ClientAs, world: World
) -> None:
    manager = await client_as("manager")
    order = await submitted(manager, world)
    draft = await create(manager, world)

    foreign = await manager.post(f"{URL}/{order['id']}/receive", json=receipt(draft, 1))
    on_draft = await manager.post(f"{URL}/{draft['id']}/receive", json=receipt(draft, 1))
    twice = await manager.post(
        f"{URL}/{order['id']}/receive",
        json={"lines": [{"line_id": order["lines"][0]["id"], "quantity": 1}] * 2},
    )

    assert_problem(foreign, 422, "validation_error")
    assert_problem(on_draft, 409, "invalid_transition")
    assert_problem(twice, 422, "validation_error")


async def test_cancel_and_close_release_what_is_on_order(client_as: ClientAs, world: World) -> None:
    manager = await client_as("manager")
    draft = await create(manager, world)
    ordered = await submitted(manager, world)
    partial = await submitted(manager, world)
    await manager.post(f"{URL}/{partial['id']}/receive", json=receipt(partial, 2))
    assert (await level_of(world.session, world.a.id, world.warehouse.id) or {})["on_order"] == 18

    cancelled_draft = await manager.post(f"{URL}/{draft['id']}/cancel")
    cancelled = await manager.post(f"{URL}/{ordered['id']}/cancel")
    closed = await manager.post(f"{URL}/{partial['id']}/cancel")

    assert cancelled_draft.json()["status"] == "cancelled"
    assert cancelled.json()["status"] == "cancelled"
    assert closed.json()["status"] == "closed"
    assert await level_of(world.session, world.a.id, world.warehouse.id) == {
        "on_hand": 2,
        "reserved": 0,
        "on_order": 0,
    }
    for order in (draft, ordered, partial):
        assert_problem(await manager.post(f"{URL}/{order['id']}/cancel"), 409, "invalid_transition")
        assert_problem(await manager.post(f"{URL}/{order['id']}/submit"), 409, "invalid_transition")
    types = [e["type"] for e in await outbox_payloads(world.session)]
    assert types.count("purchase_order.cancelled") == 2
    assert types.count("purchase_order.closed") == 1


async def test_a_received_order_cannot_be_cancelled(client_as: ClientAs, world: World) -> None:
    manager = await client_as("manager")
    order = await submitted(manager, world, 1, 1)
    await manager.post(f"{URL}/{order['id']}/receive", json=receipt(order, 1, 1))

    assert_problem(await manager.post(f"{URL}/{order['id']}/cancel"), 409, "invalid_transition")


async def test_idempotent_receive_replays_and_posts_once(client_as: ClientAs, world: World) -> None:
    manager = await client_as("manager")
    order = await submitted(manager, world)
    headers = {"Idempotency-Key": "receive-1"}

    first = await manager.post(
        f"{URL}/{order['id']}/receive", json=receipt(order, 2), headers=headers
    )
    replay = await manager.post(
        f"{URL}/{order['id']}/receive", json=receipt(order, 2), headers=headers
    )
    other = await manager.post(
        f"{URL}/{order['id']}/receive", json=receipt(order, 3), headers=headers
    )

    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert_problem(other, 422, "idempotency_key_reused")
    assert await ledger_sum(world.session, world.a.id, world.warehouse.id) == 2


async def test_idempotent_submit_and_cancel_replay(client_as: ClientAs, world: World) -> None:
    manager = await client_as("manager")
    order = await create(manager, world)
    for action in ("submit", "cancel"):
        headers = {"Idempotency-Key": f"{action}-1"}
        first = await manager.post(f"{URL}/{order['id']}/{action}", headers=headers)
        replay = await manager.post(f"{URL}/{order['id']}/{action}", headers=headers)
        assert first.status_code == replay.status_code == 200, first.text
        assert replay.json() == first.json()
    assert (await level_of(world.session, world.a.id, world.warehouse.id) or {})["on_order"] == 0


async def test_list_filters_and_sorts(client_as: ClientAs, world: World) -> None:
    manager = await client_as("manager")
    first = await create(manager, world)
    second = await submitted(manager, world)
    only_b = (
        await manager.post(URL, json=order_body(world.supplier, world.warehouse, (world.b, 1)))
    ).json()
    base = {"supplier_id": str(world.supplier.id)}

    by_status = (await manager.get(URL, params={**base, "status": "ordered"})).json()
    by_product = (await manager.get(URL, params={**base, "product_id": str(world.a.id)})).json()
    by_number = (await manager.get(URL, params={**base, "sort": "number"})).json()

    assert [o["id"] for o in by_status["items"]] == [second["id"]]
    assert {o["id"] for o in by_product["items"]} == {first["id"], second["id"]}
    assert [o["id"] for o in by_number["items"]] == [first["id"], second["id"], only_b["id"]]
    assert_problem(await manager.get(URL, params={"sort": "total"}), 422, "validation_error")


async def test_stock_levels_show_on_order_reserved_and_available(
    client_as: ClientAs, world: World
) -> None:
    manager = await client_as("manager")
    order = await submitted(manager, world)
    await manager.post(f"{URL}/{order['id']}/receive", json=receipt(order, 3))

    rows = (
        await manager.get("/api/v1/stock", params={"warehouse_id": str(world.warehouse.id)})
    ).json()["items"]
    detail = (await manager.get(f"/api/v1/products/{world.a.id}")).json()

    row = next(r for r in rows if r["product_id"] == str(world.a.id))
    assert (row["on_hand"], row["reserved"], row["available"], row["on_order"]) == (3, 0, 3, 7)
    assert row["over_reserved"] is False
    untouched = next(r for r in rows if r["product_id"] == str(world.b.id))
    assert (untouched["on_hand"], untouched["on_order"]) == (0, 4)
    assert [(s["on_hand"], s["available"], s["on_order"]) for s in detail["stock"]] == [(3, 3, 7)]
