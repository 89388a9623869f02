"""Sales orders: confirm reserves (all lines or none), ship consumes the reservation, cancel
releases it; a plain sale or a new transfer takes only what is available."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog.models import Product, Warehouse
from tests.conftest import ClientAs
from tests.factories.auth import outbox_payloads
from tests.factories.catalog import make_product, make_warehouse
from tests.factories.orders import level_of, make_role
from tests.factories.stock import make_stock
from tests.stock.test_movements import assert_problem, ledger_sum

URL = "/api/v1/sales-orders"


def order_body(warehouse: Warehouse, *lines: tuple[Product, int], **extra: Any) -> dict[str, Any]:
    return {
        "warehouse_id": str(warehouse.id),
        "customer": {"name": "Ada Shop", "email": "ada@example.com"},
        "lines": [{"product_id": str(p.id), "quantity": q} for p, q in lines],
        **extra,
    }


class World:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def build(self) -> World:
        self.warehouse = await make_warehouse(self.session)
        self.a = await make_product(self.session, sale_price="10.00", reorder_point=0)
        self.b = await make_product(
            self.session, cost_price="1.00", sale_price="2.50", reorder_point=0
        )
        await make_stock(self.session, self.a, self.warehouse, 10)
        await make_stock(self.session, self.b, self.warehouse, 5)
        return self

    async def level(self, product: Product) -> dict[str, int] | None:
        return await level_of(self.session, product.id, self.warehouse.id)


@pytest.fixture
async def world(session: AsyncSession) -> World:
    return await World(session).build()


async def create(c: httpx.AsyncClient, w: World, qa: int = 6, qb: int = 2) -> dict[str, Any]:
    lines = [(p, q) for p, q in ((w.a, qa), (w.b, qb)) if q]
    response = await c.post(URL, json=order_body(w.warehouse, *lines))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def confirmed(c: httpx.AsyncClient, w: World, qa: int = 6, qb: int = 2) -> dict[str, Any]:
    order = await create(c, w, qa, qb)
    response = await c.post(f"{URL}/{order['id']}/confirm")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def shipment(order: dict[str, Any], *quantities: int) -> dict[str, Any]:
    return {
        "lines": [
            {"line_id": line["id"], "quantity": q}
            for line, q in zip(order["lines"], quantities, strict=False)
            if q
        ]
    }


async def test_create_makes_a_numbered_draft_priced_at_sale_price(
    client_as: ClientAs, world: World
) -> None:
    staff = await client_as("staff")
    body = order_body(world.warehouse, (world.a, 3), (world.b, 2))
    body["lines"][1]["unit_price"] = "2.00"

    response = await staff.post(URL, json=body)

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "draft"
    assert order["number"].startswith("SO-")
    assert response.headers["location"] == f"{URL}/{order['id']}"
    assert order["customer"] == {"name": "Ada Shop", "email": "ada@example.com"}
    assert [
        (line["quantity"], line["reserved_quantity"], line["shipped_quantity"], line["unit_price"])
        for line in order["lines"]
    ] == [(3, 0, 0, "10.00"), (2, 0, 0, "2.00")]
    assert order["total_price"] == "34.00"
    # A draft reserves nothing.
    assert (await world.level(world.a) or {})["reserved"] == 0


async def test_line_rules_and_references(
    client_as: ClientAs, world: World, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    closed = await make_warehouse(session, is_active=False)
    retired = await make_product(session, is_active=False)

    twice = await staff.post(URL, json=order_body(world.warehouse, (world.a, 1), (world.a, 1)))
    empty = await staff.post(URL, json=order_body(world.warehouse))
    no_customer = await staff.post(
        URL, json={**order_body(world.warehouse, (world.a, 1)), "customer": {"name": ""}}
    )
    control = await staff.post(
        URL, json={**order_body(world.warehouse, (world.a, 1)), "customer": {"name": "A\x00"}}
    )
    inactive = await staff.post(URL, json=order_body(closed, (world.a, 1)))
    retired_line = await staff.post(URL, json=order_body(world.warehouse, (retired, 1)))

    for response in (twice, empty, no_customer, control):
        assert_problem(response, 422, "validation_error")
    assert_problem(inactive, 409, "inactive_warehouse")
    assert_problem(retired_line, 409, "inactive_product")
    assert_problem(await staff.get(f"{URL}/{world.a.id}"), 404, "not_found")


@pytest.mark.parametrize("role", ["analyst"])
async def test_readers_cannot_change_orders(client_as: ClientAs, world: World, role: str) -> None:
    staff = await client_as("staff")
    order = await create(staff, world)
    reader = await client_as(role)

    assert (await reader.get(f"{URL}/{order['id']}")).status_code == 200
    assert_problem(
        await reader.post(URL, json=order_body(world.warehouse, (world.a, 1))),
        403,
        "permission_denied",
    )
    assert_problem(
        await reader.patch(f"{URL}/{order['id']}", json={"note": "x"}), 403, "permission_denied"
    )
    for action in ("confirm", "cancel"):
        assert_problem(await reader.post(f"{URL}/{order['id']}/{action}"), 403, "permission_denied")
    assert_problem(
        await reader.post(f"{URL}/{order['id']}/ship", json=shipment(order, 1)),
        403,
        "permission_denied",
    )


async def test_without_sales_read_nothing_is_listed(
    client_as: ClientAs, session: AsyncSession
) -> None:
    nobody = await client_as(await make_role(session, "catalog:read", "stock:read"))
    assert_problem(await nobody.get(URL), 403, "permission_denied")


async def test_confirm_reserves_every_line(client_as: ClientAs, world: World) -> None:
    staff = await client_as("staff")
    order = await confirmed(staff, world)

    assert order["status"] == "confirmed"
    assert order["confirmed_at"] is not None
    assert [line["reserved_quantity"] for line in order["lines"]] == [6, 2]
    assert await world.level(world.a) == {"on_hand": 10, "reserved": 6, "on_order": 0}
    stock = (
        await staff.get(
            "/api/v1/stock",
            params={"product_id": str(world.a.id), "warehouse_id": str(world.warehouse.id)},
        )
    ).json()["items"][0]
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (10, 6, 4)
    assert stock["over_reserved"] is False
    assert_problem(await staff.post(f"{URL}/{order['id']}/confirm"), 409, "invalid_transition")
    assert_problem(
        await staff.patch(f"{URL}/{order['id']}", json={"note": "x"}), 409, "invalid_transition"
    )
    events = await outbox_payloads(world.session, "sales_order.confirmed")
    assert events[-1]["changes"]["status"] == {"old": "draft", "new": "confirmed"}


async def test_a_short_line_reserves_nothing_and_lists_the_shortages(
    client_as: ClientAs, world: World
) -> None:
    staff = await client_as("staff")
    await confirmed(staff, world, 7, 1)  # leaves a: 3 available, b: 4
    order = await create(staff, world, 2, 5)

    response = await staff.post(f"{URL}/{order['id']}/confirm")

    problem = assert_problem(response, 409, "insufficient_available")
    assert problem["shortages"] == [
        {
            "line_id": order["lines"][1]["id"],
            "product_id": str(world.b.id),
            "requested": 5,
            "available": 4,
        }
    ]
    assert await world.level(world.a) == {"on_hand": 10, "reserved": 7, "on_order": 0}
    assert await world.level(world.b) == {"on_hand": 5, "reserved": 1, "on_order": 0}
    again = (await staff.get(f"{URL}/{order['id']}")).json()
    assert again["status"] == "draft"
    assert [line["reserved_quantity"] for line in again["lines"]] == [0, 0]


async def test_a_product_never_stocked_here_is_short_by_everything(
    client_as: ClientAs, world: World, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    fresh = await make_product(session)
    order = (await staff.post(URL, json=order_body(world.warehouse, (fresh, 1)))).json()

    problem = assert_problem(
        await staff.post(f"{URL}/{order['id']}/confirm"), 409, "insufficient_available"
    )
    assert [(s["requested"], s["available"]) for s in problem["shortages"]] == [(1, 0)]


async def test_ship_in_parts_posts_linked_sales_and_consumes_the_reservation(
    client_as: ClientAs, world: World
) -> None:
    staff = await client_as("staff")
    order = await confirmed(staff, world)

    first = await staff.post(f"{URL}/{order['id']}/ship", json=shipment(order, 4, 2))
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "partially_shipped"
    assert [
        (line["reserved_quantity"], line["shipped_quantity"]) for line in first.json()["lines"]
    ] == [(2, 4), (0, 2)]
    assert await world.level(world.a) == {"on_hand": 6, "reserved": 2, "on_order": 0}
    rest = await staff.post(f"{URL}/{order['id']}/ship", json=shipment(order, 2))
    assert rest.json()["status"] == "shipped"
    assert await world.level(world.a) == {"on_hand": 4, "reserved": 0, "on_order": 0}

    rows = (
        await world.session.execute(
            text(
                "SELECT type, quantity, unit_price FROM stock_movements "
                "WHERE sales_order_id = :id ORDER BY created_at, quantity"
            ),
            {"id": order["id"]},
        )
    ).all()
    assert sorted((r.type, r.quantity, str(r.unit_price)) for r in rows) == [
        ("sale", 2, "10.00"),
        ("sale", 2, "2.50"),
        ("sale", 4, "10.00"),
    ]
    assert await ledger_sum(world.session, world.a.id, world.warehouse.id) == 4
    assert_problem(
        await staff.post(f"{URL}/{order['id']}/ship", json=shipment(order, 1)),
        409,
        "invalid_transition",
    )
    assert_problem(await staff.post(f"{URL}/{order['id']}/cancel"), 409, "invalid_transition")
    shipped = await outbox_payloads(world.session, "sales_order.shipped")
    assert [e["changes"]["status"]["new"] for e in shipped[-2:]] == ["partially_shipped", "shipped"]


async def test_over_shipment_on_the_last_line_writes_nothing(
    client_as: ClientAs, world: World
) -> None:
    staff = await client_as("staff")
    order = await confirmed(staff, world)

    response = await staff.post(f"{URL}/{order['id']}/ship", json=shipment(order, 6, 3))

    problem = assert_problem(response, 409, "over_shipment")
    assert problem["lines"] == [
        {"line_id": order["lines"][1]["id"], "unshipped": 2, "requested": 3}
    ]
    assert await world.level(world.a) == {"on_hand": 10, "reserved": 6, "on_order": 0}
    assert await ledger_sum(world.session, world.a.id, world.warehouse.id) == 10
    assert (await staff.get(f"{URL}/{order['id']}")).json()["status"] == "confirmed"


async def test_ship_refuses_drafts_and_foreign_lines(client_as: ClientAs, world: World) -> None:
    staff = await client_as("staff")
    draft = await create(staff, world)
    order = await confirmed(staff, world, 1, 1)

    assert_problem(
        await staff.post(f"{URL}/{draft['id']}/ship", json=shipment(draft, 1)),
        409,
        "invalid_transition",
    )
    assert_problem(
        await staff.post(f"{URL}/{order['id']}/ship", json=shipment(draft, 1)),
        422,
        "validation_error",
    )


async def test_cancel_releases_every_unshipped_reservation(
    client_as: ClientAs, world: World
) -> None:
    staff = await client_as("staff")
    draft = await create(staff, world, 1, 1)
    whole = await confirmed(staff, world, 3, 1)
    partial = await confirmed(staff, world, 4, 2)
    await staff.post(f"{URL}/{partial['id']}/ship", json=shipment(partial, 1))
    assert await world.level(world.a) == {"on_hand": 9, "reserved": 6, "on_order": 0}

    for order in (draft, whole, partial):
        response = await staff.post(f"{URL}/{order['id']}/cancel")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        assert all(line["reserved_quantity"] == 0 for line in response.json()["lines"])
        assert_problem(await staff.post(f"{URL}/{order['id']}/cancel"), 409, "invalid_transition")
        assert_problem(await staff.post(f"{URL}/{order['id']}/confirm"), 409, "invalid_transition")

    assert await world.level(world.a) == {"on_hand": 9, "reserved": 0, "on_order": 0}
    assert await world.level(world.b) == {"on_hand": 5, "reserved": 0, "on_order": 0}
    cancelled = await outbox_payloads(world.session, "sales_order.cancelled")
    assert [len(e["data"]["released"]) for e in cancelled[-3:]] == [0, 2, 2]


async def test_a_plain_sale_and_a_new_transfer_take_only_available_stock(
    client_as: ClientAs, world: World, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    other = await make_warehouse(session)
    await confirmed(staff, world, 8, 0)  # a: 10 on hand, 8 reserved, 2 available
    sale = {
        "product_id": str(world.a.id),
        "warehouse_id": str(world.warehouse.id),
        "type": "sale",
        "quantity": 3,
    }
    transfer = {
        "product_id": str(world.a.id),
        "from_warehouse_id": str(world.warehouse.id),
        "to_warehouse_id": str(other.id),
        "quantity": 3,
    }

    assert_problem(
        await staff.post("/api/v1/stock-movements", json=sale), 409, "insufficient_available"
    )
    assert_problem(
        await staff.post("/api/v1/stock-transfers", json=transfer), 409, "insufficient_available"
    )
    assert (
        await staff.post("/api/v1/stock-movements", json={**sale, "quantity": 2})
    ).status_code == 201
    assert await world.level(world.a) == {"on_hand": 8, "reserved": 8, "on_order": 0}


async def test_damage_may_take_on_hand_below_reserved_and_the_level_says_so(
    client_as: ClientAs, world: World
) -> None:
    staff = await client_as("staff")
    manager = await client_as("manager")
    order = await confirmed(staff, world, 8, 0)
    damage = {
        "product_id": str(world.a.id),
        "warehouse_id": str(world.warehouse.id),
        "type": "damage",
        "quantity": 5,
    }

    assert (await manager.post("/api/v1/stock-movements", json=damage)).status_code == 201

    row = (
        await staff.get(
            "/api/v1/stock",
            params={"product_id": str(world.a.id), "warehouse_id": str(world.warehouse.id)},
        )
    ).json()["items"][0]
    assert (row["on_hand"], row["reserved"], row["available"], row["over_reserved"]) == (
        5,
        8,
        -3,
        True,
    )
    # What is on hand can still ship; more than on hand cannot, and writes nothing.
    assert_problem(
        await staff.post(f"{URL}/{order['id']}/ship", json=shipment(order, 6)),
        409,
        "insufficient_stock",
    )
    shipped = await staff.post(f"{URL}/{order['id']}/ship", json=shipment(order, 5))
    assert shipped.status_code == 200, shipped.text
    assert await world.level(world.a) == {"on_hand": 0, "reserved": 3, "on_order": 0}


async def test_patch_changes_a_draft_with_if_match(client_as: ClientAs, world: World) -> None:
    staff = await client_as("staff")
    order = await create(staff, world)
    etag = f'"{order["version"]}"'

    patched = await staff.patch(
        f"{URL}/{order['id']}",
        json={
            "customer": {"name": "Bob"},
            "lines": [{"product_id": str(world.b.id), "quantity": 1}],
        },
        headers={"If-Match": etag},
    )
    stale = await staff.patch(
        f"{URL}/{order['id']}", json={"note": "x"}, headers={"If-Match": etag}
    )

    assert patched.status_code == 200, patched.text
    assert patched.json()["customer"] == {"name": "Bob", "email": None}
    assert [line["product_id"] for line in patched.json()["lines"]] == [str(world.b.id)]
    assert patched.headers["etag"] == f'"{patched.json()["version"]}"'
    assert_problem(stale, 412, "precondition_failed")
    updated = await outbox_payloads(world.session, "sales_order.updated")
    assert updated[-1]["changes"]["customer_name"] == {"old": "Ada Shop", "new": "Bob"}


async def test_confirm_ship_and_cancel_are_idempotent(client_as: ClientAs, world: World) -> None:
    staff = await client_as("staff")
    order = await create(staff, world)
    calls = [
        ("confirm", None),
        ("ship", shipment(order, 1)),
        ("cancel", None),
    ]
    for action, body in calls:
        headers = {"Idempotency-Key": f"{action}-{order['id']}"}
        first = await staff.post(f"{URL}/{order['id']}/{action}", json=body, headers=headers)
        replay = await staff.post(f"{URL}/{order['id']}/{action}", json=body, headers=headers)
        assert first.status_code == replay.status_code == 200, first.text
        assert replay.json() == first.json()
        assert replay.headers["idempotent-replayed"] == "true"
    assert await world.level(world.a) == {"on_hand": 9, "reserved": 0, "on_order": 0}
    assert await ledger_sum(world.session, world.a.id, world.warehouse.id) == 9


async def test_list_filters_and_sorts(client_as: ClientAs, world: World) -> None:
    staff = await client_as("staff")
    first = await create(staff, world)
    second = await confirmed(staff, world, 1, 1)
    only_b = (await staff.post(URL, json=order_body(world.warehouse, (world.b, 1)))).json()
    base = {"warehouse_id": str(world.warehouse.id)}

    by_status = (await staff.get(URL, params={**base, "status": "confirmed"})).json()
    by_product = (await staff.get(URL, params={**base, "product_id": str(world.a.id)})).json()
    by_number = (await staff.get(URL, params={**base, "sort": "number"})).json()

    assert [o["id"] for o in by_status["items"]] == [second["id"]]
    assert {o["id"] for o in by_product["items"]} == {first["id"], second["id"]}
    assert [o["id"] for o in by_number["items"]] == [first["id"], second["id"], only_b["id"]]
    assert_problem(await staff.get(URL, params={"sort": "expected_at"}), 422, "validation_error")


async def test_shipments_count_in_the_sales_summary(client_as: ClientAs, world: World) -> None:
    staff = await client_as("staff")
    manager = await client_as("manager")
    order = await confirmed(staff, world, 3, 0)
    await staff.post(f"{URL}/{order['id']}/ship", json=shipment(order, 3))

    rows = (
        await manager.get("/api/v1/reports/sales-summary", params={"group_by": "product"})
    ).json()

    row = next(r for r in rows if r["key"] == str(world.a.id))
    assert (row["units"], row["revenue"]) == (3, "30.00")
