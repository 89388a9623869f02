"""Sessions end when they should: an access token stops working on the very next request after
logout, a password change, reuse of a used refresh token, or deactivation, and stays dead when
its user is reactivated."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth.models import User
from tests.conftest import ClientAs
from tests.factories.auth import DEFAULT_PASSWORD, auth_headers, login_pair, make_user

ME = "/api/v1/users/me"


async def works(client: httpx.AsyncClient, pair: dict[str, Any]) -> int:
    response = await client.get("/api/v1/products", headers=auth_headers(pair["access_token"]))
    return response.status_code


async def test_logout_ends_the_access_token_at_once(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, roles=["staff"])
    pair = await login_pair(client, user.email)
    other_device = await login_pair(client, user.email)
    assert await works(client, pair) == 200
    response = await client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": pair["refresh_token"]},
        headers=auth_headers(pair["access_token"]),
    )
    assert response.status_code == 204
    assert await works(client, pair) == 401
    assert await works(client, other_device) == 200  # another session of the same user


async def test_a_password_change_ends_every_access_token_but_a_new_login_works_at_once(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, roles=["staff"])
    laptop = await login_pair(client, user.email)
    phone = await login_pair(client, user.email)
    changed = await client.post(
        f"{ME}/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a brand new secret"},
        headers=auth_headers(laptop["access_token"]),
    )
    assert changed.status_code == 204
    assert await works(client, laptop) == 401
    assert await works(client, phone) == 401
    # Within the same second as the change: the comparison is not by whole seconds.
    fresh = await login_pair(client, user.email, "a brand new secret")
    assert await works(client, fresh) == 200


async def test_refresh_token_reuse_ends_the_family_s_access_tokens(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, roles=["staff"])
    first = await login_pair(client, user.email)
    rotated = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert rotated.status_code == 200
    second = rotated.json()
    assert await works(client, second) == 200
    reused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401
    assert await works(client, first) == 401
    assert await works(client, second) == 401


async def test_a_reactivated_user_s_old_tokens_stay_dead(
    client_as: ClientAs, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    admin = await client_as("admin")
    user = await make_user(session, roles=["staff"])
    old = await login_pair(client, user.email)
    etag = (await admin.get(f"/api/v1/users/{user.id}")).headers["etag"]
    deleted = await admin.delete(f"/api/v1/users/{user.id}", headers={"If-Match": etag})
    assert deleted.status_code == 204
    assert await works(client, old) == 401
    etag = (await admin.get(f"/api/v1/users/{user.id}")).headers["etag"]
    reactivated = await admin.patch(
        f"/api/v1/users/{user.id}", json={"is_active": True}, headers={"If-Match": etag}
    )
    assert reactivated.status_code == 200, reactivated.text
    assert await works(client, old) == 401
    assert (await client.get(ME, headers=auth_headers(old["access_token"]))).status_code == 401
    assert await works(client, await login_pair(client, user.email)) == 200


async def test_an_administrator_s_password_reset_ends_the_user_s_access_tokens(
    client_as: ClientAs, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    admin = await client_as("admin")
    user = await make_user(session, roles=["staff"])
    old = await login_pair(client, user.email)
    etag = (await admin.get(f"/api/v1/users/{user.id}")).headers["etag"]
    reset = await admin.patch(
        f"/api/v1/users/{user.id}",
        json={"password": "reset by the admin"},
        headers={"If-Match": etag},
    )
    assert reset.status_code == 200, reset.text
    assert await works(client, old) == 401


async def test_a_user_deactivated_in_the_database_is_refused_on_read_and_write_routes(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # Only is_active changes here (no session is revoked), so this holds the auth dependency
    # to its own is_active check on routes that do not look at the user again.
    user = await make_user(session, roles=["manager"])
    pair = await login_pair(client, user.email)
    headers = auth_headers(pair["access_token"])
    assert (await client.get("/api/v1/categories", headers=headers)).status_code == 200
    refreshed = await session.get(User, user.id)
    assert refreshed is not None
    refreshed.is_active = False
    await session.flush()
    read = await client.get("/api/v1/categories", headers=headers)
    write = await client.post("/api/v1/categories", json={"name": "Nope"}, headers=headers)
    assert (read.status_code, write.status_code) == (401, 401)
    assert write.headers["www-authenticate"] == "Bearer"
