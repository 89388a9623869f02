"""Transfers between warehouses: debit at create, credit at complete, credit back at cancel."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.events.models import OutboxEvent
from stockroom.stock.models import StockLevel
from tests.conftest import ClientAs
from tests.factories.catalog import make_product, make_warehouse
from tests.factories.stock import make_stock
from tests.stock.test_movements import assert_problem, ledger_sum

URL = "/api/v1/stock-transfers"


async def level(
    session: AsyncSession, product_id: uuid.UUID, warehouse_id: uuid.UUID
) -> tuple[int, int]:
    row = (
        await session.execute(
            select(StockLevel.on_hand, StockLevel.in_transit_out).where(
                StockLevel.product_id == product_id, StockLevel.warehouse_id == warehouse_id
            )
        )
    ).one_or_none()
    return (row.on_hand, row.in_transit_out) if row else (0, 0)


async def test_transfer_debits_source_at_once_and_credits_destination_on_completion(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    source = await make_warehouse(session)
    destination = await make_warehouse(session)
    await make_stock(session, product, source, 10)
    staff = await client_as("staff")

    created = await staff.post(
        URL,
        json={
            "product_id": str(product.id),
            "from_warehouse_id": str(source.id),
            "to_warehouse_id": str(destination.id),
            "quantity": 4,
            "reference": "TR-1",
        },
    )
    assert created.status_code == 201, created.text
    transfer = created.json()
    assert transfer["status"] == "in_transit"
    assert created.headers["location"] == f"{URL}/{transfer['id']}"
    assert await level(session, product.id, source.id) == (6, 4)
    assert await level(session, product.id, destination.id) == (0, 0)

    completed = await staff.post(f"{URL}/{transfer['id']}/complete")

    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "completed"
    assert completed.json()["closed_by"] == str(staff.user.id)  # type: ignore[attr-defined]
    assert await level(session, product.id, source.id) == (6, 0)
    assert await level(session, product.id, destination.id) == (4, 0)
    assert await ledger_sum(session, product.id, source.id) == 6
    assert await ledger_sum(session, product.id, destination.id) == 4
    history = (
        await staff.get(
            "/api/v1/stock-movements", params={"product_id": str(product.id), "type": "transfer_in"}
        )
    ).json()
    assert [m["transfer_id"] for m in history["items"]] == [transfer["id"]]
    types = set(
        (
            await session.scalars(
                select(OutboxEvent.type).where(OutboxEvent.type.like("transfer.%"))
            )
        ).all()
    )
    assert {"transfer.created", "transfer.completed"} <= types


async def test_cancel_credits_the_source_back(client_as: ClientAs, session: AsyncSession) -> None:
    product = await make_product(session)
    source = await make_warehouse(session)
    destination = await make_warehouse(session)
    await make_stock(session, product, source, 10)
    staff = await client_as("staff")
    transfer = (
        await staff.post(
            URL,
            json={
                "product_id": str(product.id),
                "from_warehouse_id": str(source.id),
                "to_warehouse_id": str(destination.id),
                "quantity": 7,
            },
        )
    ).json()

    cancelled = await staff.post(f"{URL}/{transfer['id']}/cancel")

    assert cancelled.json()["status"] == "cancelled"
    assert await level(session, product.id, source.id) == (10, 0)
    assert await level(session, product.id, destination.id) == (0, 0)
    assert await ledger_sum(session, product.id, source.id) == 10


async def test_only_in_transit_transfers_can_transition(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    source = await make_warehouse(session)
    destination = await make_warehouse(session)
    await make_stock(session, product, source, 10)
    staff = await client_as("staff")
    body = {
        "product_id": str(product.id),
        "from_warehouse_id": str(source.id),
        "to_warehouse_id": str(destination.id),
        "quantity": 2,
    }
    done = (await staff.post(URL, json=body)).json()
    dropped = (await staff.post(URL, json=body)).json()
    await staff.post(f"{URL}/{done['id']}/complete")
    await staff.post(f"{URL}/{dropped['id']}/cancel")

    for transfer in (done, dropped):
        for action in ("complete", "cancel"):
            response = await staff.post(f"{URL}/{transfer['id']}/{action}")
            assert_problem(response, 409, "invalid_transition")
    assert_problem(await staff.post(f"{URL}/{uuid.uuid4()}/complete"), 404, "not_found")
    assert await level(session, product.id, source.id) == (8, 0)
    assert await level(session, product.id, destination.id) == (2, 0)


async def test_transfer_rules(client_as: ClientAs, session: AsyncSession) -> None:
    product = await make_product(session)
    source = await make_warehouse(session)
    destination = await make_warehouse(session)
    closed = await make_warehouse(session, is_active=False)
    await make_stock(session, product, source, 3)
    staff = await client_as("staff")
    analyst = await client_as("analyst")

    def body(**changes: object) -> dict[str, object]:
        return {
            "product_id": str(product.id),
            "from_warehouse_id": str(source.id),
            "to_warehouse_id": str(destination.id),
            "quantity": 2,
            **changes,
        }

    same = await staff.post(URL, json=body(to_warehouse_id=str(source.id)))
    zero = await staff.post(URL, json=body(quantity=0))
    too_many = await staff.post(URL, json=body(quantity=4))
    to_closed = await staff.post(URL, json=body(to_warehouse_id=str(closed.id)))
    nowhere = await staff.post(URL, json=body(to_warehouse_id=str(uuid.uuid4())))
    forbidden = await analyst.post(URL, json=body())

    assert_problem(same, 422, "validation_error")
    assert_problem(zero, 422, "validation_error")
    assert_problem(too_many, 409, "insufficient_stock")
    assert_problem(to_closed, 409, "inactive_warehouse")
    assert_problem(nowhere, 404, "not_found")
    assert_problem(forbidden, 403, "permission_denied")
    assert await level(session, product.id, source.id) == (3, 0)


async def test_list_and_get_transfers(client_as: ClientAs, session: AsyncSession) -> None:
    product = await make_product(session)
    source = await make_warehouse(session)
    destination = await make_warehouse(session)
    await make_stock(session, product, source, 10)
    staff = await client_as("staff")
    body = {
        "product_id": str(product.id),
        "from_warehouse_id": str(source.id),
        "to_warehouse_id": str(destination.id),
        "quantity": 1,
    }
    first = (await staff.post(URL, json=body)).json()
    second = (await staff.post(URL, json=body)).json()
    await staff.post(f"{URL}/{first['id']}/complete")

    open_ = (
        await staff.get(URL, params={"status": "in_transit", "product_id": str(product.id)})
    ).json()
    by_destination = (await staff.get(URL, params={"warehouse_id": str(destination.id)})).json()

    assert [t["id"] for t in open_["items"]] == [second["id"]]
    assert [t["id"] for t in by_destination["items"]] == [second["id"], first["id"]]
    assert (await staff.get(f"{URL}/{first['id']}")).json()["status"] == "completed"
    assert_problem(await staff.get(f"{URL}/{uuid.uuid4()}"), 404, "not_found")
    assert_problem(await staff.get(URL, params={"status": "lost"}), 422, "validation_error")
