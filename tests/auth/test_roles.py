"""/roles: the seeded roles, custom roles, and their permissions."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth.permissions import SEEDED_ROLES, Perm
from tests.conftest import ClientAs
from tests.factories.auth import outbox_payloads

ROLES = "/api/v1/roles"


async def test_roles_list_shows_the_seeded_roles_and_permissions(client_as: ClientAs) -> None:
    manager = await client_as("manager")
    response = await manager.get(ROLES)
    assert response.status_code == 200
    page = response.json()
    listed = {r["name"]: set(r["permissions"]) for r in page["items"]}
    assert listed == {name: {str(p) for p in perms} for name, (_, perms) in SEEDED_ROLES.items()}
    assert listed["admin"] == {str(p) for p in Perm}
    assert all(r["is_system"] for r in page["items"])
    assert page["total"] == 4
    names = [
        r["name"] for r in (await manager.get(ROLES, params={"sort": "-name"})).json()["items"]
    ]
    assert names == ["staff", "manager", "analyst", "admin"]
    assert (await manager.get(ROLES, params={"sort": "permissions"})).status_code == 422


async def test_custom_role_is_created_and_grants_its_permissions(
    client_as: ClientAs, session: AsyncSession
) -> None:
    admin = await client_as("admin")
    response = await admin.post(
        ROLES,
        json={
            "name": "auditor",
            "description": "reads the activity log",
            "permissions": ["audit:read", "reports:read", "audit:read"],
        },
    )
    assert response.status_code == 201
    role = response.json()
    assert role["permissions"] == ["audit:read", "reports:read"]
    assert role["is_system"] is False
    assert response.headers["Location"] == f"{ROLES}/auditor"
    assert (await admin.get(f"{ROLES}/auditor")).json() == role

    auditor = await client_as("auditor")
    me = (await auditor.get("/api/v1/users/me")).json()
    assert me["permissions"] == ["audit:read", "reports:read"]
    [event] = await outbox_payloads(session, "role.created")
    assert event["data"]["permissions"] == ["audit:read", "reports:read"]


async def test_invalid_roles_are_refused(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    duplicate = await admin.post(ROLES, json={"name": "staff", "permissions": []})
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "role_exists"
    unknown = await admin.post(ROLES, json={"name": "wizard", "permissions": ["magic:cast"]})
    assert unknown.status_code == 422
    bad_name = await admin.post(ROLES, json={"name": "Has Spaces", "permissions": []})
    assert bad_name.status_code == 422
    extra = await admin.post(ROLES, json={"name": "sneaky", "is_system": True})
    assert extra.status_code == 422


async def test_custom_role_permissions_change_for_holders_at_once(
    client_as: ClientAs, session: AsyncSession
) -> None:
    admin = await client_as("admin")
    await admin.post(ROLES, json={"name": "counter", "permissions": ["stock:read"]})
    holder = await client_as("counter")
    assert (await holder.get("/api/v1/users")).status_code == 403

    response = await admin.patch(
        f"{ROLES}/counter",
        json={"permissions": ["stock:read", "users:read"], "description": "counts and looks"},
    )
    assert response.status_code == 200
    assert response.json()["permissions"] == ["stock:read", "users:read"]
    assert response.json()["description"] == "counts and looks"
    assert (await holder.get("/api/v1/users")).status_code == 200  # same token

    [event] = await outbox_payloads(session, "role.updated")
    assert event["changes"]["permissions"] == {
        "old": ["stock:read"],
        "new": ["stock:read", "users:read"],
    }


async def test_seeded_roles_keep_their_permissions(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    response = await admin.patch(f"{ROLES}/staff", json={"permissions": ["catalog:read"]})
    assert response.status_code == 409
    assert response.json()["code"] == "system_role_immutable"
    described = await admin.patch(f"{ROLES}/staff", json={"description": "till and shelves"})
    assert described.status_code == 200
    assert described.json()["description"] == "till and shelves"
    assert (await admin.patch(f"{ROLES}/nobody", json={"description": "x"})).status_code == 404
    assert (await admin.get(f"{ROLES}/nobody")).status_code == 404


async def test_a_role_cannot_carry_permissions_its_creator_lacks(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    await admin.post(ROLES, json={"name": "people", "permissions": ["users:read", "users:write"]})
    hr = await client_as("people")
    escalate = await hr.post(ROLES, json={"name": "superhr", "permissions": ["costs:read"]})
    assert escalate.status_code == 403
    widen = await hr.patch(f"{ROLES}/people", json={"permissions": ["users:write", "costs:read"]})
    assert widen.status_code == 403
    narrow = await hr.post(ROLES, json={"name": "viewer", "permissions": ["users:read"]})
    assert narrow.status_code == 201
