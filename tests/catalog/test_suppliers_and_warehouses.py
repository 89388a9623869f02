from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.events.models import OutboxEvent
from tests.conftest import ClientAs
from tests.factories.catalog import make_product, make_supplier, make_warehouse, set_stock_level


async def types_for(session: AsyncSession, entity_id: str) -> list[str]:
    rows = await session.scalars(select(OutboxEvent).order_by(OutboxEvent.occurred_at))
    return [r.type for r in rows if (r.payload.get("entity") or {}).get("id") == entity_id]


async def test_supplier_lifecycle(client_as: ClientAs, session: AsyncSession) -> None:
    manager = await client_as("manager")
    name = f"Acme {uuid.uuid4().hex[:6]}"
    created = await manager.post(
        "/api/v1/suppliers",
        json={
            "name": name,
            "email": "orders@acme.example.com",
            "phone": "+1 555",
            "notes": "net 30",
        },
    )
    assert created.status_code == 201, created.text
    supplier_id = created.json()["id"]
    assert created.headers["Location"] == f"/api/v1/suppliers/{supplier_id}"
    listed = await manager.get("/api/v1/suppliers", params={"q": name.lower()})
    assert [s["id"] for s in listed.json()["items"]] == [supplier_id]
    patched = await manager.patch(
        f"/api/v1/suppliers/{supplier_id}", json={"phone": "+1 556"}, headers={"If-Match": '"1"'}
    )
    assert patched.status_code == 200
    assert patched.json()["phone"] == "+1 556"
    stale = await manager.patch(
        f"/api/v1/suppliers/{supplier_id}", json={"phone": "0"}, headers={"If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert (await manager.delete(f"/api/v1/suppliers/{supplier_id}")).status_code == 204
    assert (await manager.get(f"/api/v1/suppliers/{supplier_id}")).status_code == 404
    assert await types_for(session, supplier_id) == [
        "supplier.created",
        "supplier.updated",
        "supplier.deleted",
    ]


async def test_supplier_conflicts_and_validation(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    supplier = await make_supplier(session)
    duplicate = await manager.post("/api/v1/suppliers", json={"name": supplier.name})
    assert duplicate.status_code == 409
    await make_product(session, supplier_id=supplier.id)
    in_use = await manager.delete(f"/api/v1/suppliers/{supplier.id}")
    assert in_use.status_code == 409
    bad_email = await manager.post("/api/v1/suppliers", json={"name": "x", "email": "nope"})
    assert bad_email.status_code == 422
    assert (await manager.get(f"/api/v1/suppliers/{uuid.uuid4()}")).status_code == 404
    assert (
        await manager.patch(f"/api/v1/suppliers/{uuid.uuid4()}", json={"notes": "x"})
    ).status_code == 404
    staff = await client_as("staff")
    assert (await staff.get("/api/v1/suppliers")).status_code == 200
    assert (await staff.post("/api/v1/suppliers", json={"name": "x"})).status_code == 403
    assert (await staff.delete(f"/api/v1/suppliers/{supplier.id}")).status_code == 403


async def test_warehouse_lifecycle(client_as: ClientAs, session: AsyncSession) -> None:
    manager = await client_as("manager")
    code = f"W{uuid.uuid4().hex[:6].upper()}"
    created = await manager.post("/api/v1/warehouses", json={"code": code, "name": "Main"})
    assert created.status_code == 201, created.text
    warehouse_id = created.json()["id"]
    assert created.headers["Location"] == f"/api/v1/warehouses/{warehouse_id}"
    assert created.json()["is_active"] is True
    duplicate = await manager.post(
        "/api/v1/warehouses", json={"code": code.lower(), "name": "Again"}
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "duplicate_code"
    deactivated = await manager.patch(
        f"/api/v1/warehouses/{warehouse_id}", json={"is_active": False}
    )
    assert deactivated.status_code == 200
    inactive = await manager.get("/api/v1/warehouses", params={"is_active": "false", "q": code})
    assert [w["id"] for w in inactive.json()["items"]] == [warehouse_id]
    stale = await manager.patch(
        f"/api/v1/warehouses/{warehouse_id}", json={"name": "x"}, headers={"If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert (await manager.delete(f"/api/v1/warehouses/{warehouse_id}")).status_code == 204
    assert await types_for(session, warehouse_id) == [
        "warehouse.created",
        "warehouse.updated",
        "warehouse.deleted",
    ]


async def test_warehouse_with_stock_on_hand_or_in_transit_cannot_be_deleted(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    on_hand = await make_warehouse(session)
    in_transit = await make_warehouse(session)
    await set_stock_level(session, await make_product(session), on_hand, 1)
    await set_stock_level(session, await make_product(session), in_transit, 0, in_transit_out=2)
    for warehouse in (on_hand, in_transit):
        response = await manager.delete(f"/api/v1/warehouses/{warehouse.id}")
        assert response.status_code == 409
        assert response.json()["code"] == "in_use"
    history_only = await make_warehouse(session)
    await set_stock_level(session, await make_product(session), history_only, 0)
    # Zero stock but a history: the foreign key keeps it, reported as 409, not a 500.
    assert (await manager.delete(f"/api/v1/warehouses/{history_only.id}")).status_code == 409
    assert (await manager.get(f"/api/v1/warehouses/{on_hand.id}")).status_code == 200


async def test_warehouse_validation_and_permissions(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    assert (
        await manager.post("/api/v1/warehouses", json={"code": "has space", "name": "x"})
    ).status_code == 422
    assert (await manager.post("/api/v1/warehouses", json={"name": "x"})).status_code == 422
    assert (await manager.get(f"/api/v1/warehouses/{uuid.uuid4()}")).status_code == 404
    assert (await manager.get("/api/v1/warehouses", params={"sort": "-bogus"})).status_code == 422
    warehouse = await make_warehouse(session)
    analyst = await client_as("analyst")
    assert (await analyst.get(f"/api/v1/warehouses/{warehouse.id}")).status_code == 200
    assert (
        await analyst.patch(f"/api/v1/warehouses/{warehouse.id}", json={"name": "x"})
    ).status_code == 403
    assert (
        await analyst.post("/api/v1/warehouses", json={"code": "X", "name": "x"})
    ).status_code == 403


async def test_a_supplier_is_active_until_patched_inactive(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    name = f"Retiring {uuid.uuid4().hex[:6]}"
    created = await manager.post("/api/v1/suppliers", json={"name": name})
    assert created.status_code == 201, created.text
    supplier = created.json()
    assert supplier["is_active"] is True
    url = f"/api/v1/suppliers/{supplier['id']}"

    for bad in (None, "no", 0):
        refused = await manager.patch(url, json={"is_active": bad})
        assert refused.status_code == 422, (bad, refused.text)
    patched = await manager.patch(
        url, json={"is_active": False}, headers={"If-Match": f'"{supplier["version"]}"'}
    )

    assert patched.status_code == 200, patched.text
    assert patched.json()["is_active"] is False
    assert (await manager.get(url)).json()["is_active"] is False
    inactive = await manager.get("/api/v1/suppliers", params={"q": name, "is_active": "false"})
    active = await manager.get("/api/v1/suppliers", params={"q": name, "is_active": "true"})
    assert [s["id"] for s in inactive.json()["items"]] == [supplier["id"]]
    assert active.json()["items"] == []
    rows = await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "supplier.updated"))
    changes = [r.payload["changes"] for r in rows if r.payload["entity"]["id"] == supplier["id"]]
    assert changes == [{"is_active": {"old": True, "new": False}}]
    born_inactive = await manager.post(
        "/api/v1/suppliers", json={"name": f"{name} 2", "is_active": False}
    )
    assert born_inactive.json()["is_active"] is False
    staff = await client_as("staff")
    assert (await staff.patch(url, json={"is_active": True})).status_code == 403
