"""Confirm and ship are SQL functions (`sales_order_confirm`, `sales_order_ship`, migration
0013) that build the response body and the order's event themselves: the body must be what the
API writes for `SalesOrderRead` (the GET of the same order, serialized by pydantic), the event
what `events.record` writes, and every refusal must leave nothing written."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.context import Context
from stockroom.db.session import driver_connection
from stockroom.http.errors import AppError
from stockroom.idempotency import IdempotencyKey, StoredResponse
from stockroom.sales import actions
from stockroom.sales.schemas import ShipRequest
from tests.conftest import ClientAs
from tests.factories.auth import outbox_payloads
from tests.sales.test_sales_orders import URL, World, confirmed, create, order_body, shipment
from tests.stock.test_movements import ledger_sum

__all__ = ["World"]


@pytest.fixture
async def world(session: AsyncSession) -> World:
    return await World(session).build()


async def test_the_bodies_are_the_orders_json_byte_for_byte(
    client_as: ClientAs, world: World
) -> None:
    staff = await client_as("staff")
    body = order_body(world.warehouse, (world.a, 3), (world.b, 2), reference='R "1"/ü')
    body["customer"] = {"name": 'Zoë "Quote" \\ Shop ☃'}  # no email: null
    body["lines"][1]["unit_price"] = "1234567.5"
    order = (await staff.post(URL, json=body)).json()
    path = f"{URL}/{order['id']}"

    confirm = await staff.post(f"{path}/confirm")
    after_confirm = await staff.get(path)
    ship = await staff.post(f"{path}/ship", json=shipment(order, 1, 2))
    after_ship = await staff.get(path)

    for action, read in ((confirm, after_confirm), (ship, after_ship)):
        assert action.status_code == read.status_code == 200, action.text
        assert action.content == read.content
        for header in ("content-type", "etag"):
            assert action.headers[header] == read.headers[header]
    assert ship.json()["status"] == "partially_shipped"
    assert ship.json()["total_price"] == "2469165.00"
    assert ship.headers["etag"] == f'"{order["version"] + 2}"'


async def test_the_events_are_written_as_the_recorder_writes_them(
    client_as: ClientAs, world: World
) -> None:
    staff = await client_as("staff")
    order = await confirmed(staff, world)
    shipped = await staff.post(
        f"{URL}/{order['id']}/ship", json={**shipment(order, 6, 1), "reference": "BOX-1"}
    )
    assert shipped.status_code == 200, shipped.text
    rows = (
        await world.session.execute(
            text(
                "SELECT id, type, occurred_at, payload FROM outbox_events "
                "WHERE type IN ('sales_order.confirmed', 'sales_order.shipped') "
                "AND payload -> 'entity' ->> 'id' = :id ORDER BY occurred_at"
            ),
            {"id": order["id"]},
        )
    ).all()
    movements = (
        await world.session.execute(
            text("SELECT id, product_id FROM stock_movements WHERE sales_order_id = :id"),
            {"id": order["id"]},
        )
    ).all()
    movement_of = {str(m.product_id): str(m.id) for m in movements}

    def expected(row: Any, status: str, old: str, lines: list[tuple[int, int]]) -> dict[str, Any]:
        return {
            "id": str(row.id),
            "type": row.type,
            "occurred_at": row.occurred_at.isoformat(),
            "actor": {"id": str(staff.user.id), "email": staff.user.email},  # type: ignore[attr-defined]
            "entity": {"type": "sales_order", "id": order["id"]},
            "request": row.payload["request"],
            "changes": {"status": {"old": old, "new": status}},
            "data": {
                "sales_order_id": order["id"],
                "number": order["number"],
                "status": status,
                "warehouse_id": str(world.warehouse.id),
                "lines": [
                    {
                        "line_id": line["id"],
                        "product_id": line["product_id"],
                        "quantity": line["quantity"],
                        "reserved_quantity": reserved,
                        "shipped_quantity": shipped,
                        "unit_price": line["unit_price"],
                    }
                    for line, (reserved, shipped) in zip(order["lines"], lines, strict=True)
                ],
            },
        }

    confirm_row, ship_row = rows
    assert confirm_row.payload == expected(confirm_row, "confirmed", "draft", [(6, 0), (2, 0)])
    want = expected(ship_row, "partially_shipped", "confirmed", [(0, 6), (1, 1)])
    want["data"]["shipped"] = [
        {
            "line_id": line["id"],
            "product_id": line["product_id"],
            "quantity": quantity,
            "movement_id": movement_of[line["product_id"]],
        }
        for line, quantity in zip(order["lines"], (6, 1), strict=True)
    ]
    want["data"]["reference"] = "BOX-1"
    assert ship_row.payload == want
    assert set(want["request"]) == {"id", "ip", "user_agent", "method", "path"}
    assert want["request"]["path"] == "/api/v1/sales-orders/{order_id}/ship"
    # The movements' events were stamped before the order's.
    posted = await outbox_payloads(world.session, "stock.movement_posted")
    assert {e["data"]["movement_id"] for e in posted[-2:]} == set(movement_of.values())
    assert all(e["occurred_at"] < ship_row.payload["occurred_at"] for e in posted[-2:])


# --- the functions called directly ------------------------------------------------------------

CTX = Context.system("test")


async def _refused(call: Any) -> AppError:
    with pytest.raises(AppError) as caught:
        await call
    return caught.value


async def test_each_refusal_of_the_functions(
    client_as: ClientAs, world: World, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    connection = await driver_connection(session)
    draft = await create(staff, world, 6, 2)
    order = await confirmed(staff, world, 1, 1)
    draft_id, order_id = uuid.UUID(draft["id"]), uuid.UUID(order["id"])

    def ship(o: dict[str, Any], *quantities: int) -> ShipRequest:
        return ShipRequest.model_validate(shipment(o, *quantities))

    missing = await _refused(actions.confirm(connection, uuid.uuid4(), CTX, None))
    assert (missing.status, missing.code) == (404, "not_found")
    missing = await _refused(actions.ship(connection, uuid.uuid4(), ship(order, 1), CTX, None))
    assert (missing.status, missing.code) == (404, "not_found")

    twice = await _refused(actions.confirm(connection, order_id, CTX, None))
    assert (twice.code, twice.extra["status"]) == ("invalid_transition", "confirmed")
    not_yet = await _refused(actions.ship(connection, draft_id, ship(draft, 1), CTX, None))
    assert (not_yet.code, not_yet.extra["status"]) == ("invalid_transition", "draft")

    foreign = ShipRequest.model_validate(
        {"lines": [shipment(order, 1)["lines"][0], shipment(draft, 1)["lines"][0]]}
    )
    unknown = await _refused(actions.ship(connection, order_id, foreign, CTX, None))
    assert unknown.status == 422
    assert unknown.errors is not None
    assert unknown.errors[0]["loc"] == ["body", "lines", 1, "line_id"]

    over = await _refused(actions.ship(connection, order_id, ship(order, 2, 3), CTX, None))
    assert over.code == "over_shipment"
    assert over.extra["lines"] == [
        {"line_id": line["id"], "unshipped": 1, "requested": q}
        for line, q in zip(order["lines"], (2, 3), strict=True)
    ]

    assert await world.level(world.a) == {"on_hand": 10, "reserved": 1, "on_order": 0}
    assert (await staff.get(f"{URL}/{draft['id']}")).json()["version"] == draft["version"]


async def test_a_shortage_lists_every_short_line_with_what_is_available(
    client_as: ClientAs, world: World, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    draft = await create(staff, world, 11, 6)  # a: 10 available, b: 5

    short = await _refused(
        actions.confirm(await driver_connection(session), uuid.UUID(draft["id"]), CTX, None)
    )

    assert short.code == "insufficient_available"
    assert short.extra["shortages"] == [
        {"line_id": line["id"], "product_id": line["product_id"], "requested": q, "available": a}
        for line, q, a in zip(draft["lines"], (11, 6), (10, 5), strict=True)
    ]
    assert await world.level(world.a) == {"on_hand": 10, "reserved": 0, "on_order": 0}
    assert (await staff.get(f"{URL}/{draft['id']}")).json()["version"] == draft["version"]


async def test_a_ship_refused_on_its_last_line_by_the_ledger_writes_nothing(
    client_as: ClientAs, world: World, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    order = await confirmed(staff, world, 6, 2)
    # b's units went missing (a level changed behind the ledger's back): 1 on hand, 2 reserved.
    await session.execute(
        text("UPDATE stock_levels SET on_hand = 1 WHERE product_id = :p AND warehouse_id = :w"),
        {"p": world.b.id, "w": world.warehouse.id},
    )
    events_before = len(await outbox_payloads(session))

    refused = await _refused(
        actions.ship(
            await driver_connection(session),
            uuid.UUID(order["id"]),
            ShipRequest.model_validate(shipment(order, 6, 2)),
            CTX,
            None,
        )
    )

    assert (refused.code, refused.extra["line"]) == ("insufficient_stock", 1)
    assert refused.extra["product_id"] == str(world.b.id)
    assert await world.level(world.a) == {"on_hand": 10, "reserved": 6, "on_order": 0}
    assert await ledger_sum(session, world.a.id, world.warehouse.id) == 10
    again = (await staff.get(f"{URL}/{order['id']}")).json()
    assert (again["status"], again["version"]) == ("confirmed", order["version"])
    assert [line["shipped_quantity"] for line in again["lines"]] == [0, 0]
    assert len(await outbox_payloads(session)) == events_before


async def test_a_key_replays_the_stored_body_and_refuses_another_request(
    client_as: ClientAs, world: World, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    order = await create(staff, world)
    connection = await driver_connection(session)
    key = IdempotencyKey(
        user_id=staff.user.id,  # type: ignore[attr-defined]
        route="POST /api/v1/sales-orders/{order_id}/confirm",
        key="k-1",
        request_hash="a" * 64,
        ttl=timedelta(hours=1),
    )
    order_id = uuid.UUID(order["id"])

    first = await actions.confirm(connection, order_id, CTX, key)
    replay = await actions.confirm(connection, order_id, CTX, key)
    other = await _refused(
        actions.confirm(
            connection,
            order_id,
            CTX,
            IdempotencyKey(key.user_id, key.route, key.key, "b" * 64, key.ttl),
        )
    )

    assert isinstance(first, actions.OrderBody)
    assert isinstance(replay, StoredResponse)
    assert replay.status == 200
    assert replay.body == json.loads(first.body)
    assert other.code == "idempotency_key_reused"
    assert await world.level(world.a) == {"on_hand": 10, "reserved": 6, "on_order": 0}
