"""COUNT_VARIANCE_THRESHOLD bounds the total applied without review per product and warehouse
over 24 hours: small counts cannot add up to an unreviewed write-off."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.stock.models import StockCount
from stockroom.types import utcnow
from tests.conftest import ClientAs
from tests.factories.catalog import make_product, make_warehouse
from tests.factories.stock import make_stock
from tests.stock.test_counts import count
from tests.stock.test_movements import on_hand

URL = "/api/v1/stock-counts"


async def test_small_counts_cannot_add_up_to_an_unreviewed_write_off(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 78)
    staff = await client_as("staff")

    statuses = []
    for counted in (68, 58, 48, 38):  # each 10 under on hand: the repro of the issue
        response = await staff.post(URL, json=count(product, warehouse, counted))
        assert response.status_code == 201, response.text
        statuses.append(response.json()["status"])

    # The first uses the whole allowance of 10; every later one waits for a manager.
    assert statuses == ["applied", "pending_review", "pending_review", "pending_review"]
    assert await on_hand(session, product.id, warehouse.id) == 68


async def test_the_allowance_is_shared_by_both_directions_and_renews_after_24_hours(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    other = await make_warehouse(session)
    await make_stock(session, product, warehouse, 50)
    await make_stock(session, product, other, 50)
    staff = await client_as("staff")

    first = await staff.post(URL, json=count(product, warehouse, 44))  # -6
    second = await staff.post(URL, json=count(product, warehouse, 48))  # +4: total 10
    third = await staff.post(URL, json=count(product, warehouse, 49))  # +1: total 11
    elsewhere = await staff.post(URL, json=count(product, other, 40))  # another warehouse
    assert [r.json()["status"] for r in (first, second, third, elsewhere)] == [
        "applied",
        "applied",
        "pending_review",
        "applied",
    ]

    await session.execute(
        update(StockCount)
        .where(StockCount.product_id == product.id)
        .values(created_at=utcnow() - timedelta(hours=24, seconds=1))
    )
    renewed = await staff.post(URL, json=count(product, warehouse, 40))  # -8, a new day
    assert renewed.json()["status"] == "applied"
    assert await on_hand(session, product.id, warehouse.id) == 40
