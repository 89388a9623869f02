from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.events.models import OutboxEvent
from tests.conftest import ClientAs
from tests.factories.catalog import make_category, make_product


async def event_types(session: AsyncSession, entity_id: str) -> list[str]:
    rows = await session.scalars(select(OutboxEvent).order_by(OutboxEvent.occurred_at))
    return [r.type for r in rows if (r.payload.get("entity") or {}).get("id") == entity_id]


async def test_category_lifecycle_with_events(client_as: ClientAs, session: AsyncSession) -> None:
    manager = await client_as("manager")
    created = await manager.post(
        "/api/v1/categories", json={"name": "Tools", "description": "hand tools"}
    )
    assert created.status_code == 201, created.text
    category = created.json()
    assert created.headers["Location"] == f"/api/v1/categories/{category['id']}"
    child = await manager.post(
        "/api/v1/categories", json={"name": "Hammers", "parent_id": category["id"]}
    )
    assert child.status_code == 201
    got = await manager.get(f"/api/v1/categories/{category['id']}")
    assert got.status_code == 200
    assert got.headers["ETag"] == '"1"'
    patched = await manager.patch(
        f"/api/v1/categories/{category['id']}",
        json={"name": "Tooling"},
        headers={"If-Match": got.headers["ETag"]},
    )
    assert patched.status_code == 200
    assert patched.json()["name"] == "Tooling"
    assert patched.headers["ETag"] == '"2"'
    children = await manager.get("/api/v1/categories", params={"parent_id": category["id"]})
    assert [c["name"] for c in children.json()["items"]] == ["Hammers"]
    assert (await manager.delete(f"/api/v1/categories/{child.json()['id']}")).status_code == 204
    assert (await manager.delete(f"/api/v1/categories/{category['id']}")).status_code == 204
    assert (await manager.get(f"/api/v1/categories/{category['id']}")).status_code == 404
    assert await event_types(session, category["id"]) == [
        "category.created",
        "category.updated",
        "category.deleted",
    ]


async def test_sibling_names_are_unique_but_cousins_may_share(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    root = await make_category(session, name=f"Root {uuid.uuid4().hex[:6]}")
    duplicate_root = await manager.post("/api/v1/categories", json={"name": root.name})
    assert duplicate_root.status_code == 409
    a = await make_category(session, parent=root)
    b = await make_category(session, parent=root)
    first = await manager.post("/api/v1/categories", json={"name": "Misc", "parent_id": str(a.id)})
    assert first.status_code == 201
    cousin = await manager.post("/api/v1/categories", json={"name": "Misc", "parent_id": str(b.id)})
    assert cousin.status_code == 201
    sibling = await manager.post(
        "/api/v1/categories", json={"name": "Misc", "parent_id": str(a.id)}
    )
    assert sibling.status_code == 409
    assert sibling.json()["code"] == "duplicate_name"
    moved = await manager.patch(
        f"/api/v1/categories/{cousin.json()['id']}", json={"parent_id": str(a.id)}
    )
    assert moved.status_code == 409


async def test_category_cycles_are_422(client_as: ClientAs, session: AsyncSession) -> None:
    manager = await client_as("manager")
    root = await make_category(session)
    child = await make_category(session, parent=root)
    grandchild = await make_category(session, parent=child)
    for parent in (root, grandchild):
        response = await manager.patch(
            f"/api/v1/categories/{root.id}", json={"parent_id": str(parent.id)}
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"] == ["body", "parent_id"]
    unknown = await manager.post(
        "/api/v1/categories", json={"name": "x", "parent_id": str(uuid.uuid4())}
    )
    assert unknown.status_code == 422


async def test_delete_with_children_or_products_is_409(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    parent = await make_category(session)
    await make_category(session, parent=parent)
    with_children = await manager.delete(f"/api/v1/categories/{parent.id}")
    assert with_children.status_code == 409
    assert with_children.json()["code"] == "in_use"
    stocked = await make_category(session)
    await make_product(session, category_id=stocked.id, is_active=False)
    assert (await manager.delete(f"/api/v1/categories/{stocked.id}")).status_code == 409


async def test_category_stale_etag_404_and_bad_fields(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    category = await make_category(session)
    stale = await manager.patch(
        f"/api/v1/categories/{category.id}", json={"name": "x"}, headers={"If-Match": '"9"'}
    )
    assert stale.status_code == 412
    assert (await manager.get(f"/api/v1/categories/{uuid.uuid4()}")).status_code == 404
    assert (await manager.delete(f"/api/v1/categories/{uuid.uuid4()}")).status_code == 404
    assert (await manager.post("/api/v1/categories", json={"name": ""})).status_code == 422
    assert (
        await manager.patch(f"/api/v1/categories/{category.id}", json={"name": None})
    ).status_code == 422
    assert (
        await manager.get("/api/v1/categories", params={"sort": "parent_id"})
    ).status_code == 422


async def test_category_permissions_per_role(client_as: ClientAs, session: AsyncSession) -> None:
    category = await make_category(session)
    for role in ("staff", "analyst"):
        c = await client_as(role)
        assert (await c.get("/api/v1/categories")).status_code == 200
        assert (await c.post("/api/v1/categories", json={"name": "x"})).status_code == 403
        assert (
            await c.patch(f"/api/v1/categories/{category.id}", json={"name": "y"})
        ).status_code == 403
        assert (await c.delete(f"/api/v1/categories/{category.id}")).status_code == 403
    admin = await client_as("admin")
    assert (
        await admin.post("/api/v1/categories", json={"name": f"A {uuid.uuid4()}"})
    ).status_code == 201
