"""Stock counts: applied within the variance threshold, reviewed beyond it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.events.models import OutboxEvent
from tests.conftest import ClientAs
from tests.factories.catalog import make_product, make_warehouse
from tests.factories.stock import make_stock
from tests.stock.test_movements import assert_problem, ledger_sum, on_hand

URL = "/api/v1/stock-counts"


def count(product: Any, warehouse: Any, counted: int) -> dict[str, Any]:
    return {
        "product_id": str(product.id),
        "warehouse_id": str(warehouse.id),
        "counted_quantity": counted,
    }


async def test_small_variance_is_applied_at_once(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 50)
    staff = await client_as("staff")

    response = await staff.post(URL, json=count(product, warehouse, 42))  # variance -8 <= 10

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["expected"], body["counted"], body["variance"]) == (50, 42, -8)
    assert body["status"] == "applied"
    assert body["movement_id"] is not None
    assert response.headers["location"] == f"{URL}/{body['id']}"
    assert await on_hand(session, product.id, warehouse.id) == 42
    assert await ledger_sum(session, product.id, warehouse.id) == 42
    moved = (await staff.get(f"/api/v1/stock-movements/{body['movement_id']}")).json()
    assert (moved["type"], moved["signed_quantity"]) == ("count", -8)


async def test_exact_count_is_applied_without_a_movement(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    staff = await client_as("staff")

    body = (await staff.post(URL, json=count(product, warehouse, 0))).json()

    assert (body["variance"], body["status"], body["movement_id"]) == (0, "applied", None)


async def test_large_variance_waits_for_review_and_moves_nothing(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 50)
    staff = await client_as("staff")

    body = (await staff.post(URL, json=count(product, warehouse, 30))).json()

    assert (body["variance"], body["status"], body["movement_id"]) == (-20, "pending_review", None)
    assert await on_hand(session, product.id, warehouse.id) == 50
    pending = (await staff.get(URL, params={"status": "pending_review"})).json()
    assert body["id"] in {c["id"] for c in pending["items"]}


async def test_approval_applies_the_variance_to_on_hand_at_approval_time(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 50)
    staff = await client_as("staff")
    manager = await client_as("manager")
    pending = (await staff.post(URL, json=count(product, warehouse, 30))).json()  # variance -20
    # Five more are sold between the count and its approval: that sale is real and stays.
    await staff.post(
        "/api/v1/stock-movements",
        json={
            "product_id": str(product.id),
            "warehouse_id": str(warehouse.id),
            "type": "sale",
            "quantity": 5,
        },
    )

    forbidden = await staff.post(f"{URL}/{pending['id']}/approve")
    approved = await manager.post(f"{URL}/{pending['id']}/approve")
    twice = await manager.post(f"{URL}/{pending['id']}/approve")

    assert_problem(forbidden, 403, "permission_denied")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["reviewed_by"] == str(manager.user.id)  # type: ignore[attr-defined]
    assert approved.json()["movement_id"] is not None
    assert await on_hand(session, product.id, warehouse.id) == 25  # 45 now, -20 variance
    assert await ledger_sum(session, product.id, warehouse.id) == 25
    assert_problem(twice, 409, "invalid_transition")


async def test_approval_that_would_go_negative_is_refused_and_stays_pending(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 30)
    staff = await client_as("staff")
    manager = await client_as("manager")
    pending = (await staff.post(URL, json=count(product, warehouse, 0))).json()  # variance -30
    await staff.post(
        "/api/v1/stock-movements",
        json={
            "product_id": str(product.id),
            "warehouse_id": str(warehouse.id),
            "type": "sale",
            "quantity": 10,
        },
    )

    response = await manager.post(f"{URL}/{pending['id']}/approve")

    assert_problem(response, 409, "insufficient_stock")
    assert (await staff.get(f"{URL}/{pending['id']}")).json()["status"] == "pending_review"
    assert await on_hand(session, product.id, warehouse.id) == 20


async def test_rejection_moves_nothing(client_as: ClientAs, session: AsyncSession) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 50)
    staff = await client_as("staff")
    manager = await client_as("manager")
    pending = (await staff.post(URL, json=count(product, warehouse, 99))).json()

    rejected = await manager.post(f"{URL}/{pending['id']}/reject")
    approve_after = await manager.post(f"{URL}/{pending['id']}/approve")
    applied = (await staff.post(URL, json=count(product, warehouse, 51))).json()
    review_applied = await manager.post(f"{URL}/{applied['id']}/reject")

    assert rejected.json()["status"] == "rejected"
    assert_problem(approve_after, 409, "invalid_transition")
    assert_problem(review_applied, 409, "invalid_transition")
    assert_problem(await manager.post(f"{URL}/{uuid.uuid4()}/reject"), 404, "not_found")
    assert await on_hand(session, product.id, warehouse.id) == 51
    types = [
        r.payload["type"]
        for r in (
            await session.scalars(select(OutboxEvent).where(OutboxEvent.type.like("count.%")))
        ).all()
        if r.payload["data"]["product_id"] == str(product.id)
    ]
    assert sorted(types) == sorted(
        ["count.recorded", "count.rejected", "count.recorded", "count.applied"]
    )


async def test_count_validation(client_as: ClientAs, session: AsyncSession) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    retired = await make_product(session, is_active=False)
    staff = await client_as("staff")
    analyst = await client_as("analyst")

    assert_problem(
        await staff.post(URL, json=count(product, warehouse, -1)), 422, "validation_error"
    )
    assert_problem(
        await staff.post(URL, json=count(retired, warehouse, 1)), 409, "inactive_product"
    )
    assert_problem(
        await analyst.post(URL, json=count(product, warehouse, 1)), 403, "permission_denied"
    )
    assert_problem(await staff.get(f"{URL}/{uuid.uuid4()}"), 404, "not_found")
    assert_problem(await staff.get(URL, params={"status": "odd"}), 422, "validation_error")
