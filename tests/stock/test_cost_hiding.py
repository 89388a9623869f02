"""`unit_cost` reaches only callers with costs:read, on every stock route that returns movements:
history, reversals, and idempotent replays of both (a replay returns a stored response, which
must be hidden again for the caller)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ClientAs
from tests.factories.auth import make_role
from tests.factories.catalog import make_product, make_warehouse
from tests.stock.test_movements import URL, movement

# stock:adjust reverses movements; without costs:read the caller must never see what they cost.
ADJUSTER_WITHOUT_COSTS = ["stock:read", "stock:write", "stock:adjust"]


async def test_stock_history_shows_unit_cost_only_with_costs_read(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session, cost_price=Decimal("4.00"))
    warehouse = await make_warehouse(session)
    staff = await client_as("staff")
    analyst = await client_as("analyst")
    await staff.post(URL, json=movement(product, warehouse, "receipt", 5))
    path = f"/api/v1/products/{product.id}/stock-history"

    hidden = await staff.get(path)
    shown = await analyst.get(path)

    assert hidden.status_code == 200, hidden.text
    assert len(hidden.json()["items"]) == 1
    assert all("unit_cost" not in m for m in hidden.json()["items"])
    assert [m["unit_cost"] for m in shown.json()["items"]] == ["4.00"]


async def test_a_reversal_shows_unit_cost_only_with_costs_read(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session, cost_price=Decimal("4.00"))
    warehouse = await make_warehouse(session)
    adjuster = await client_as(await make_role(session, ADJUSTER_WITHOUT_COSTS))
    manager = await client_as("manager")
    first = (await adjuster.post(URL, json=movement(product, warehouse, "receipt", 5))).json()
    second = (await adjuster.post(URL, json=movement(product, warehouse, "receipt", 5))).json()

    hidden = await adjuster.post(f"{URL}/{first['id']}/reverse")
    shown = await manager.post(f"{URL}/{second['id']}/reverse")

    assert hidden.status_code == 201, hidden.text
    assert hidden.json()["reverses_id"] == first["id"]
    assert "unit_cost" not in hidden.json()
    assert shown.status_code == 201, shown.text
    assert shown.json()["unit_cost"] == "4.00"  # a reversal carries the original's cost


async def test_an_idempotent_replay_hides_unit_cost_without_costs_read(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session, cost_price=Decimal("4.00"))
    warehouse = await make_warehouse(session)
    staff = await client_as("staff")
    adjuster = await client_as(await make_role(session, ADJUSTER_WITHOUT_COSTS))
    post_key = {"Idempotency-Key": str(uuid.uuid4())}
    body = movement(product, warehouse, "receipt", 5)

    posted = await staff.post(URL, json=body, headers=post_key)
    replayed_post = await staff.post(URL, json=body, headers=post_key)
    reverse_key = {"Idempotency-Key": str(uuid.uuid4())}
    receipt = (await adjuster.post(URL, json=body)).json()
    reversed_ = await adjuster.post(f"{URL}/{receipt['id']}/reverse", headers=reverse_key)
    replayed_reverse = await adjuster.post(f"{URL}/{receipt['id']}/reverse", headers=reverse_key)

    for first, replay in ((posted, replayed_post), (reversed_, replayed_reverse)):
        assert first.status_code == replay.status_code == 201, replay.text
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["id"] == first.json()["id"]
        assert "unit_cost" not in first.json()
        assert "unit_cost" not in replay.json()
