"""/users/me and the /users administration routes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ClientAs
from tests.factories.auth import (
    DEFAULT_PASSWORD,
    auth_headers,
    login_pair,
    make_user,
    outbox_payloads,
)

USERS = "/api/v1/users"


async def test_me_shows_roles_and_effective_permissions(client_as: ClientAs) -> None:
    c = await client_as("staff", "analyst")
    response = await c.get(f"{USERS}/me")
    assert response.status_code == 200
    me = response.json()
    assert me["id"] == str(c.user.id)  # type: ignore[attr-defined]
    assert me["roles"] == ["analyst", "staff"]
    assert me["permissions"] == sorted(
        {
            "catalog:read",
            "stock:read",
            "stock:write",
            "costs:read",
            "reports:read",
            "audit:read",
            "purchasing:read",
            "sales:read",
            "sales:write",
        }
    )
    assert response.headers["ETag"]
    assert "password_hash" not in me


async def test_patch_me_changes_name_and_email_only(
    client_as: ClientAs, session: AsyncSession
) -> None:
    c = await client_as("staff")
    await make_user(session, email="taken@example.com")
    etag = (await c.get(f"{USERS}/me")).headers["ETag"]

    response = await c.patch(
        f"{USERS}/me",
        json={
            "full_name": "Renamed",
            "email": "Renamed@Example.com",
            "current_password": DEFAULT_PASSWORD,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Renamed"
    assert response.json()["email"] == "renamed@example.com"
    assert response.headers["ETag"] != etag

    stale = await c.patch(f"{USERS}/me", json={"full_name": "x"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    taken = await c.patch(
        f"{USERS}/me", json={"email": "TAKEN@example.com", "current_password": DEFAULT_PASSWORD}
    )
    assert taken.status_code == 409
    for field, value in (("roles", ["admin"]), ("is_active", False), ("password", "12345678")):
        refused = await c.patch(f"{USERS}/me", json={field: value})
        assert refused.status_code == 422, field
    assert (await c.get(f"{USERS}/me")).json()["roles"] == ["staff"]
    [event] = await outbox_payloads(session, "user.updated")
    assert set(event["changes"]) == {"full_name", "email"}


async def test_users_routes_need_a_token_and_the_permission(
    client: httpx.AsyncClient, client_as: ClientAs, session: AsyncSession
) -> None:
    target = await make_user(session)
    staff = await client_as("staff")
    manager = await client_as("manager")
    for method, path in (
        ("GET", USERS),
        ("POST", USERS),
        ("GET", f"{USERS}/{target.id}"),
        ("PATCH", f"{USERS}/{target.id}"),
        ("DELETE", f"{USERS}/{target.id}"),
        ("GET", "/api/v1/roles"),
        ("POST", "/api/v1/roles"),
        ("PATCH", "/api/v1/roles/staff"),
    ):
        anonymous = await client.request(method, path, json={})
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
        forbidden = await staff.request(method, path, json={})
        assert forbidden.status_code == 403, (method, path)
        assert forbidden.json()["code"] == "permission_denied"
        assert "WWW-Authenticate" not in forbidden.headers
    # managers hold users:read but not users:write
    assert (await manager.get(USERS)).status_code == 200
    assert (await manager.get(f"{USERS}/{target.id}")).status_code == 200
    assert (await manager.delete(f"{USERS}/{target.id}")).status_code == 403


async def test_permission_denied_is_recorded(client_as: ClientAs, session: AsyncSession) -> None:
    staff = await client_as("staff")
    assert (await staff.get(USERS)).status_code == 403
    [event] = await outbox_payloads(session, "auth.permission_denied")
    assert event["actor"]["id"] == str(staff.user.id)  # type: ignore[attr-defined]
    assert event["data"] == {"permission": "users:read"}
    assert event["request"]["path"] == "/api/v1/users"
    assert event["request"]["method"] == "GET"


async def test_admin_creates_a_user_with_roles(
    client_as: ClientAs, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    admin = await client_as("admin")
    response = await admin.post(
        USERS,
        json={
            "email": "Clerk@Example.com",
            "password": "clerk password",
            "full_name": "Clerk",
            "roles": ["staff"],
        },
    )
    assert response.status_code == 201
    created = response.json()
    assert created["roles"] == ["staff"]
    assert created["email"] == "clerk@example.com"
    assert response.headers["Location"] == f"{USERS}/{created['id']}"
    fetched = await admin.get(response.headers["Location"])
    assert fetched.json() == created
    assert fetched.headers["ETag"] == response.headers["ETag"]
    assert (await login_pair(client, "clerk@example.com", "clerk password"))["access_token"]

    [event] = await outbox_payloads(session, "user.created")
    assert event["data"]["roles"] == ["staff"]
    assert "clerk password" not in str(event)

    duplicate = await admin.post(
        USERS, json={"email": "CLERK@example.com", "password": "x" * 8, "full_name": "C"}
    )
    assert duplicate.status_code == 409
    unknown_role = await admin.post(
        USERS,
        json={"email": "x@example.com", "password": "x" * 8, "full_name": "X", "roles": ["boss"]},
    )
    assert unknown_role.status_code == 422
    assert unknown_role.json()["errors"][0]["loc"] == ["body", "roles"]


async def test_get_unknown_user_is_404(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    response = await admin.get(f"{USERS}/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert (await admin.get(f"{USERS}/not-a-uuid")).status_code == 422


async def test_list_users_filters_sorts_and_paginates(
    client_as: ClientAs, session: AsyncSession
) -> None:
    admin = await client_as("admin", email="zz-admin@example.com")
    await make_user(session, email="alice@shop.example", full_name="Alice Archer", roles=["staff"])
    await make_user(session, email="bob@shop.example", full_name="Bob Baker", roles=["manager"])
    await make_user(session, email="carol@shop.example", full_name="Carol 100%_", is_active=False)

    everyone = (await admin.get(USERS, params={"q": "SHOP.example"})).json()
    assert [u["email"] for u in everyone["items"]] == [
        "alice@shop.example",
        "bob@shop.example",
        "carol@shop.example",
    ]
    assert everyone["total"] == 3
    assert everyone["page"] == 1
    assert everyone["page_size"] == 20

    by_name = await admin.get(USERS, params={"q": "baker"})
    assert [u["email"] for u in by_name.json()["items"]] == ["bob@shop.example"]
    wildcard = await admin.get(USERS, params={"q": "100%_"})
    assert [u["email"] for u in wildcard.json()["items"]] == ["carol@shop.example"]
    inactive = await admin.get(USERS, params={"q": "shop", "is_active": "false"})
    assert [u["email"] for u in inactive.json()["items"]] == ["carol@shop.example"]
    managers = await admin.get(USERS, params={"q": "shop", "role": "manager"})
    assert [u["roles"] for u in managers.json()["items"]] == [["manager"]]

    descending = await admin.get(USERS, params={"q": "shop", "sort": "-full_name"})
    assert [u["full_name"] for u in descending.json()["items"]] == [
        "Carol 100%_",
        "Bob Baker",
        "Alice Archer",
    ]
    page_two = (await admin.get(USERS, params={"q": "shop", "page": 2, "page_size": 2})).json()
    assert [u["email"] for u in page_two["items"]] == ["carol@shop.example"]
    assert page_two["total"] == 3

    assert (await admin.get(USERS, params={"sort": "password_hash"})).status_code == 422
    assert (await admin.get(USERS, params={"page_size": 101})).status_code == 422


async def test_patch_user_with_if_match(client_as: ClientAs, session: AsyncSession) -> None:
    admin = await client_as("admin")
    target = await make_user(session, roles=["staff"], full_name="Before")
    read = await admin.get(f"{USERS}/{target.id}")
    etag = read.headers["ETag"]

    changed = await admin.patch(
        f"{USERS}/{target.id}",
        json={"full_name": "After", "roles": ["staff", "analyst"]},
        headers={"If-Match": etag},
    )
    assert changed.status_code == 200
    assert changed.json()["full_name"] == "After"
    assert changed.json()["roles"] == ["analyst", "staff"]
    assert changed.headers["ETag"] != etag

    stale = await admin.patch(
        f"{USERS}/{target.id}", json={"full_name": "Lost update"}, headers={"If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    assert (await admin.get(f"{USERS}/{target.id}")).json()["full_name"] == "After"

    [roles_event] = await outbox_payloads(session, "user.roles_changed")
    assert roles_event["changes"]["roles"] == {"old": ["staff"], "new": ["analyst", "staff"]}
    [updated] = await outbox_payloads(session, "user.updated")
    assert updated["changes"] == {"full_name": {"old": "Before", "new": "After"}}


async def test_role_change_applies_on_the_next_request_with_an_old_token(
    client_as: ClientAs,
) -> None:
    admin = await client_as("admin")
    clerk = await client_as("staff")
    clerk_id = clerk.user.id  # type: ignore[attr-defined]
    assert (await clerk.get(USERS)).status_code == 403

    await admin.patch(f"{USERS}/{clerk_id}", json={"roles": ["manager"]})
    assert (await clerk.get(USERS)).status_code == 200  # same token, new permissions

    await admin.patch(f"{USERS}/{clerk_id}", json={"roles": []})
    assert (await clerk.get(USERS)).status_code == 403
    assert (await clerk.get(f"{USERS}/me")).json()["permissions"] == []


async def test_deactivation_applies_on_the_next_request_and_blocks_login(
    client_as: ClientAs, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    admin = await client_as("admin")
    await make_user(session, email="leaver@example.com", roles=["staff"])
    pair = await login_pair(client, "leaver@example.com")
    leaver = (await client.get(f"{USERS}/me", headers=auth_headers(pair["access_token"]))).json()

    response = await admin.delete(f"{USERS}/{leaver['id']}")
    assert response.status_code == 204
    assert response.content == b""

    old_token = await client.get(f"{USERS}/me", headers=auth_headers(pair["access_token"]))
    assert old_token.status_code == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert refreshed.status_code == 401
    login = await client.post(
        "/api/v1/auth/login-json",
        json={"email": "leaver@example.com", "password": "correct horse battery staple"},
    )
    assert login.status_code == 401
    shown = (await admin.get(f"{USERS}/{leaver['id']}")).json()
    assert shown["is_active"] is False
    [event] = await outbox_payloads(session, "user.deactivated")
    assert event["entity"]["id"] == leaver["id"]
    # Deleting again is idempotent; reactivation through PATCH works.
    assert (await admin.delete(f"{USERS}/{leaver['id']}")).status_code == 204
    back = await admin.patch(f"{USERS}/{leaver['id']}", json={"is_active": True})
    assert back.json()["is_active"] is True
    assert (await login_pair(client, "leaver@example.com"))["access_token"]


async def test_delete_with_a_stale_etag_is_412(client_as: ClientAs, session: AsyncSession) -> None:
    admin = await client_as("admin")
    target = await make_user(session)
    response = await admin.delete(f"{USERS}/{target.id}", headers={"If-Match": '"999"'})
    assert response.status_code == 412
    assert (await admin.get(f"{USERS}/{target.id}")).json()["is_active"] is True
    assert (await admin.delete(f"{USERS}/{uuid.uuid4()}")).status_code == 404


async def test_the_last_active_admin_cannot_be_removed(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    admin_id = admin.user.id  # type: ignore[attr-defined]
    # The shared test database may hold no other admin; make the count explicit.
    others = (await admin.get(USERS, params={"role": "admin", "is_active": "true"})).json()
    assert [u["id"] for u in others["items"]] == [str(admin_id)]

    demote = await admin.patch(f"{USERS}/{admin_id}", json={"roles": ["staff"]})
    assert demote.status_code == 409
    assert demote.json()["code"] == "last_admin"
    assert (await admin.delete(f"{USERS}/{admin_id}")).status_code == 409
    deactivate = await admin.patch(f"{USERS}/{admin_id}", json={"is_active": False})
    assert deactivate.status_code == 409

    second = await client_as("admin")
    assert (await second.delete(f"{USERS}/{admin_id}")).status_code == 204


@pytest.mark.parametrize("via", ["create", "patch"])
async def test_nobody_grants_permissions_they_do_not_hold(
    client_as: ClientAs, session: AsyncSession, via: str
) -> None:
    admin = await client_as("admin")
    # A custom role that may manage users but holds nothing else.
    created = await admin.post(
        "/api/v1/roles",
        json={"name": "user-admin", "permissions": ["users:read", "users:write"]},
    )
    assert created.status_code == 201
    helpdesk = await client_as("user-admin")
    body: dict[str, Any] = {"roles": ["admin"]}
    if via == "create":
        body |= {"email": "escalate@example.com", "password": "x" * 10, "full_name": "E"}
        response = await helpdesk.post(USERS, json=body)
    else:
        me = helpdesk.user.id  # type: ignore[attr-defined]
        response = await helpdesk.patch(f"{USERS}/{me}", json=body)
    assert response.status_code == 403
    assert (await helpdesk.get(f"{USERS}/me")).json()["roles"] == ["user-admin"]
    # ... nor manage someone who holds more than they do.
    assert (await helpdesk.delete(f"{USERS}/{admin.user.id}")).status_code == 403  # type: ignore[attr-defined]


async def test_admin_password_reset_revokes_sessions(
    client_as: ClientAs, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    admin = await client_as("admin")
    target = await make_user(session, email="forgetful@example.com")
    pair = await login_pair(client, "forgetful@example.com")
    response = await admin.patch(f"{USERS}/{target.id}", json={"password": "temporary pass 1"})
    assert response.status_code == 200
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert refreshed.status_code == 401
    assert (await login_pair(client, "forgetful@example.com", "temporary pass 1"))["access_token"]
    [event] = await outbox_payloads(session, "user.updated")
    assert "temporary pass 1" not in str(event)
