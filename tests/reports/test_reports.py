"""Reports against a hand-computed fixture, to the cent.

The fixture (computed by hand, see the comments) on a database of its own:

- Tools: hammer (cost 4.00, sale 10.00), drill (cost 20.00, sale 50.00); Toys: yo-yo (cost 1.00,
  sale 3.00). Warehouses W1 and W2.
- 2020: hammer receipt 10 @ 4.00 at W1, sale 2 @ 10.00 at W1 on 2020-01-05.
- Now: hammer receipts 10 @ 4.00 (W1) and 20 @ 5.50 (W2) -> weighted receipt cost over all its
  receipts (10x4 + 10x4 + 20x5.50) / 40 = 4.75; sales 3 @ 10.00 (W1), 5 @ 9.50 (W2); a return
  1 @ 9.50 (W2).
- drill receipts 4 @ 20.00 and 1 @ 25.00 (W1), the 25.00 one reversed -> receipt cost 20.00;
  sales 2 @ 50.00 and 1 @ 45.00, the latter reversed.
- yo-yo: no receipt (an adjustment of +10) -> cost falls back to its cost price 1.00; sale 4 @ 3.00.
- A transfer of 3 hammers W1 -> W2 is still in transit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from stockroom.auth.models import Role, RolePermission
from tests.factories.auth import make_user
from tests.factories.catalog import make_category, make_product, make_warehouse
from tests.factories.stock import make_sale, make_stock
from tests.stock.live import LiveApp, live_app
from tests.stock.test_movements import assert_problem

SUMMARY = "/api/v1/reports/sales-summary"
VALUATION = "/api/v1/reports/stock-valuation"
OLD_DAY = datetime(2020, 1, 5, 12, tzinfo=UTC)


@dataclass
class Fixture:
    live: LiveApp
    ids: dict[str, str]
    manager: httpx.AsyncClient


@pytest.fixture
async def fixture(fresh_database: str) -> AsyncIterator[Fixture]:
    async with live_app(fresh_database) as live:
        async with live.sessionmaker() as session, session.begin():
            tools = await make_category(session, name="Tools")
            toys = await make_category(session, name="Toys")
            hammer = await make_product(
                session,
                name="Hammer",
                category_id=tools.id,
                cost_price=Decimal("4.00"),
                sale_price=Decimal("10.00"),
            )
            drill = await make_product(
                session,
                name="Drill",
                category_id=tools.id,
                cost_price=Decimal("20.00"),
                sale_price=Decimal("50.00"),
            )
            yoyo = await make_product(
                session,
                name="Yo-yo",
                category_id=toys.id,
                cost_price=Decimal("1.00"),
                sale_price=Decimal("3.00"),
            )
            w1 = await make_warehouse(session, code="W1")
            w2 = await make_warehouse(session, code="W2")
            await make_stock(session, hammer, w1, 10, created_at=datetime(2020, 1, 1, tzinfo=UTC))
            await make_sale(session, hammer, w1, 2, created_at=OLD_DAY)
        ids = {
            "tools": str(tools.id),
            "toys": str(toys.id),
            "hammer": str(hammer.id),
            "drill": str(drill.id),
            "yoyo": str(yoyo.id),
            "w1": str(w1.id),
            "w2": str(w2.id),
        }
        manager = await live.client("manager")

        async def post(
            product: str, warehouse: str, type_: str, quantity: int, **extra: Any
        ) -> Any:
            response = await manager.post(
                "/api/v1/stock-movements",
                json={
                    "product_id": ids[product],
                    "warehouse_id": ids[warehouse],
                    "type": type_,
                    "quantity": quantity,
                    **extra,
                },
            )
            assert response.status_code == 201, response.text
            return response.json()

        await post("hammer", "w1", "receipt", 10)
        await post("hammer", "w2", "receipt", 20, unit_cost="5.50")
        await post("hammer", "w1", "sale", 3)
        await post("hammer", "w2", "sale", 5, unit_price="9.50")
        await post("hammer", "w2", "return", 1, unit_price="9.50")
        await post("drill", "w1", "receipt", 4)
        dear = await post("drill", "w1", "receipt", 1, unit_cost="25.00")
        assert (
            await manager.post(f"/api/v1/stock-movements/{dear['id']}/reverse")
        ).status_code == 201
        await post("drill", "w1", "sale", 2)
        discounted = await post("drill", "w1", "sale", 1, unit_price="45.00")
        reversed_sale = await manager.post(f"/api/v1/stock-movements/{discounted['id']}/reverse")
        assert reversed_sale.status_code == 201
        await post("yoyo", "w1", "adjustment", 10)
        await post("yoyo", "w1", "sale", 4)
        transfer = await manager.post(
            "/api/v1/stock-transfers",
            json={
                "product_id": ids["hammer"],
                "from_warehouse_id": ids["w1"],
                "to_warehouse_id": ids["w2"],
                "quantity": 3,
            },
        )
        assert transfer.status_code == 201
        yield Fixture(live=live, ids=ids, manager=manager)
        await manager.aclose()


def window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "from": (now - timedelta(days=1)).isoformat(),
        "to": (now + timedelta(days=1)).isoformat(),
    }


async def summary(f: Fixture, group_by: str, **params: str) -> list[dict[str, Any]]:
    response = await f.manager.get(SUMMARY, params={"group_by": group_by, **params})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


async def test_sales_by_product_match_the_hand_computed_figures(fixture: Fixture) -> None:
    rows = await summary(fixture, "product", **window())
    ids = fixture.ids
    assert rows == [
        {
            "key": ids["drill"],
            "label": "Drill",
            "units": 2,
            "revenue": "100.00",
            "cost": "40.00",
            "margin": "60.00",
        },
        {
            "key": ids["hammer"],
            "label": "Hammer",
            "units": 7,  # 3 + 5 - 1 returned
            "revenue": "68.00",  # 30.00 + 47.50 - 9.50
            "cost": "33.25",  # 7 x 4.75
            "margin": "34.75",
        },
        {
            "key": ids["yoyo"],
            "label": "Yo-yo",
            "units": 4,
            "revenue": "12.00",
            "cost": "4.00",
            "margin": "8.00",
        },
    ]


async def test_sales_by_category_warehouse_and_day(fixture: Fixture) -> None:
    ids = fixture.ids
    by_category = await summary(fixture, "category", **window())
    by_warehouse = await summary(fixture, "warehouse", **window())
    by_day = await summary(fixture, "day", **window())
    today = datetime.now(UTC).date().isoformat()

    assert by_category == [
        {
            "key": ids["tools"],
            "label": "Tools",
            "units": 9,
            "revenue": "168.00",
            "cost": "73.25",
            "margin": "94.75",
        },
        {
            "key": ids["toys"],
            "label": "Toys",
            "units": 4,
            "revenue": "12.00",
            "cost": "4.00",
            "margin": "8.00",
        },
    ]
    assert by_warehouse == [
        {
            "key": ids["w1"],
            "label": "Warehouse W1",
            "units": 9,  # hammer 3, drill 2, yo-yo 4
            "revenue": "142.00",
            "cost": "58.25",  # 14.25 + 40.00 + 4.00
            "margin": "83.75",
        },
        {
            "key": ids["w2"],
            "label": "Warehouse W2",
            "units": 4,
            "revenue": "38.00",
            "cost": "19.00",
            "margin": "19.00",
        },
    ]
    assert by_day == [
        {
            "key": today,
            "label": today,
            "units": 13,
            "revenue": "180.00",
            "cost": "77.25",
            "margin": "102.75",
        }
    ]


async def test_the_window_selects_sales_and_the_receipts_costing_them(fixture: Fixture) -> None:
    january = await summary(fixture, "day", **{"from": "2020-01-01", "to": "2020-02-01"})
    everything = await summary(fixture, "day")

    # In January 2020 the only hammer receipt cost 4.00.
    assert january == [
        {
            "key": "2020-01-05",
            "label": "2020-01-05",
            "units": 2,
            "revenue": "20.00",
            "cost": "8.00",
            "margin": "12.00",
        }
    ]
    # Unbounded, every receipt counts: 2 x 4.75.
    assert everything[0]["cost"] == "9.50"
    assert [r["key"] for r in everything] == ["2020-01-05", datetime.now(UTC).date().isoformat()]


async def test_costs_are_absent_without_costs_read(fixture: Fixture) -> None:
    live = fixture.live
    async with live.sessionmaker() as session, session.begin():
        role = Role(name="sales-reporter", description="reports without costs")
        session.add(role)
        await session.flush()
        session.add(RolePermission(role_id=role.id, permission="reports:read"))
        await session.flush()
        await make_user(session, roles=["sales-reporter"])
    reporter = await live.client("sales-reporter")
    staff = await live.client("staff")

    rows = (await reporter.get(SUMMARY, params={"group_by": "product", **window()})).json()
    valuation = await reporter.get(VALUATION)

    assert {tuple(sorted(r)) for r in rows} == {("key", "label", "revenue", "units")}
    assert_problem(valuation, 403, "permission_denied")
    assert_problem(await staff.get(SUMMARY), 403, "permission_denied")
    await reporter.aclose()
    await staff.aclose()


async def test_sales_summary_validation(fixture: Fixture) -> None:
    bad_group = await fixture.manager.get(SUMMARY, params={"group_by": "month"})
    backwards = await fixture.manager.get(
        SUMMARY, params={"from": "2021-01-01", "to": "2020-01-01"}
    )
    assert_problem(bad_group, 422, "validation_error")
    assert_problem(backwards, 422, "validation_error")


async def test_stock_valuation_at_cost_counts_goods_in_transit_at_the_sender(
    fixture: Fixture,
) -> None:
    ids = fixture.ids
    everywhere = (await fixture.manager.get(VALUATION)).json()
    w1 = (await fixture.manager.get(VALUATION, params={"warehouse_id": ids["w1"]})).json()
    w2 = (await fixture.manager.get(VALUATION, params={"warehouse_id": ids["w2"]})).json()
    missing = await fixture.manager.get(
        VALUATION, params={"warehouse_id": "00000000-0000-7000-8000-000000000000"}
    )

    # hammer: W1 10 - 2 + 10 - 3 = 15 (3 of them in transit), W2 20 - 5 + 1 = 16 -> 31 x 4.00;
    # drill: 4 + 1 - 1 - 2 - 1 + 1 = 2 x 20.00; yo-yo: 10 - 4 = 6 x 1.00.
    assert everywhere == {
        "total_value": "170.00",
        "rows": [
            {"category_id": ids["tools"], "category": "Tools", "units": 33, "value": "164.00"},
            {"category_id": ids["toys"], "category": "Toys", "units": 6, "value": "6.00"},
        ],
    }
    assert w1["total_value"] == "106.00"
    assert w2 == {
        "total_value": "64.00",
        "rows": [{"category_id": ids["tools"], "category": "Tools", "units": 16, "value": "64.00"}],
    }
    assert_problem(missing, 404, "not_found")
