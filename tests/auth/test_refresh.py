"""Refresh tokens: rotation, reuse detection, expiry, logout, password change."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth.models import RefreshToken
from stockroom.auth.tokens import hash_refresh_token
from tests.factories.auth import (
    DEFAULT_PASSWORD,
    FakeClock,
    auth_headers,
    login_pair,
    make_user,
    outbox_payloads,
)

REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(REFRESH, json={"refresh_token": token})


async def test_refresh_rotates_the_pair(client: httpx.AsyncClient, session: AsyncSession) -> None:
    await make_user(session, email="rotate@example.com")
    first = await login_pair(client, "rotate@example.com")
    response = await refresh(client, first["refresh_token"])
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["token_type"] == "bearer"
    me = await client.get("/api/v1/users/me", headers=auth_headers(second["access_token"]))
    assert me.status_code == 200
    assert (await refresh(client, second["refresh_token"])).status_code == 200


async def test_refresh_tokens_are_stored_only_as_hashes(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, email="hashed@example.com")
    pair = await login_pair(client, "hashed@example.com")
    hashes = list(await session.scalars(select(RefreshToken.token_hash)))
    assert hash_refresh_token(pair["refresh_token"]) in hashes
    assert pair["refresh_token"] not in hashes


async def test_reusing_a_refresh_token_revokes_the_whole_family(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, email="reuse@example.com")
    stolen = await login_pair(client, "reuse@example.com")
    legit = (await refresh(client, stolen["refresh_token"])).json()

    replay = await refresh(client, stolen["refresh_token"])
    assert replay.status_code == 401
    assert replay.headers["WWW-Authenticate"] == "Bearer"
    assert replay.json()["code"] == "invalid_refresh_token"
    # The legitimate holder's newer token died with the family.
    assert (await refresh(client, legit["refresh_token"])).status_code == 401

    [event] = await outbox_payloads(session, "auth.refresh_reused")
    assert event["entity"] == {"type": "user", "id": str(user.id)}
    assert stolen["refresh_token"] not in str(event)

    # Another login (another family) is unaffected.
    other = await login_pair(client, "reuse@example.com")
    assert (await refresh(client, other["refresh_token"])).status_code == 200


async def test_reuse_revokes_only_that_family(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, email="two-devices@example.com")
    laptop = await login_pair(client, "two-devices@example.com")
    phone = await login_pair(client, "two-devices@example.com")
    await refresh(client, laptop["refresh_token"])
    assert (await refresh(client, laptop["refresh_token"])).status_code == 401
    assert (await refresh(client, phone["refresh_token"])).status_code == 200


async def test_unknown_and_garbage_refresh_tokens_are_401(client: httpx.AsyncClient) -> None:
    assert (await refresh(client, "no-such-token")).status_code == 401
    assert (await client.post(REFRESH, json={})).status_code == 422
    assert (await client.post(REFRESH, json={"refresh_token": "x" * 600})).status_code == 422


async def test_refresh_token_expires_after_its_lifetime(
    app: Any, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    clock = FakeClock()
    app.state.clock = clock
    await make_user(session, email="expiry@example.com")
    pair = await login_pair(client, "expiry@example.com")
    clock.advance(days=6, hours=23)
    fresher = await refresh(client, pair["refresh_token"])
    assert fresher.status_code == 200
    clock.advance(days=7, seconds=1)
    assert (await refresh(client, fresher.json()["refresh_token"])).status_code == 401


async def test_deactivated_user_cannot_refresh(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, email="deactivated@example.com")
    pair = await login_pair(client, "deactivated@example.com")
    user.is_active = False
    await session.flush()
    assert (await refresh(client, pair["refresh_token"])).status_code == 401


async def test_logout_revokes_the_family(client: httpx.AsyncClient, session: AsyncSession) -> None:
    user = await make_user(session, email="logout@example.com")
    pair = await login_pair(client, "logout@example.com")
    rotated = (await refresh(client, pair["refresh_token"])).json()
    headers = auth_headers(rotated["access_token"])

    response = await client.post(
        LOGOUT, json={"refresh_token": rotated["refresh_token"]}, headers=headers
    )
    assert response.status_code == 204
    assert response.content == b""
    assert (await refresh(client, rotated["refresh_token"])).status_code == 401
    [event] = await outbox_payloads(session, "auth.logged_out")
    assert event["actor"]["id"] == str(user.id)
    # The session's access token ended with it; from another session, logging out the ended
    # one again is harmless.
    ended = await client.post(
        LOGOUT, json={"refresh_token": rotated["refresh_token"]}, headers=headers
    )
    assert ended.status_code == 401
    other = auth_headers((await login_pair(client, "logout@example.com"))["access_token"])
    again = await client.post(
        LOGOUT, json={"refresh_token": rotated["refresh_token"]}, headers=other
    )
    assert again.status_code == 204
    assert len(await outbox_payloads(session, "auth.logged_out")) == 1


async def test_logout_needs_an_access_token_and_cannot_revoke_someone_else(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, email="victim@example.com")
    await make_user(session, email="attacker@example.com")
    victim = await login_pair(client, "victim@example.com")
    attacker = await login_pair(client, "attacker@example.com")

    anonymous = await client.post(LOGOUT, json={"refresh_token": victim["refresh_token"]})
    assert anonymous.status_code == 401
    foreign = await client.post(
        LOGOUT,
        json={"refresh_token": victim["refresh_token"]},
        headers=auth_headers(attacker["access_token"]),
    )
    assert foreign.status_code == 204
    assert (await refresh(client, victim["refresh_token"])).status_code == 200


async def test_password_change_revokes_every_refresh_token(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, email="changer@example.com")
    laptop = await login_pair(client, "changer@example.com")
    phone = await login_pair(client, "changer@example.com")
    response = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a brand new secret"},
        headers=auth_headers(laptop["access_token"]),
    )
    assert response.status_code == 204
    assert (await refresh(client, laptop["refresh_token"])).status_code == 401
    assert (await refresh(client, phone["refresh_token"])).status_code == 401
    old = await client.post(
        "/api/v1/auth/login-json",
        json={"email": "changer@example.com", "password": DEFAULT_PASSWORD},
    )
    assert old.status_code == 401
    assert (await login_pair(client, "changer@example.com", "a brand new secret"))["access_token"]


async def test_password_change_with_a_wrong_current_password_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, email="careful@example.com")
    pair = await login_pair(client, "careful@example.com")
    response = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": "wrong", "new_password": "another long one"},
        headers=auth_headers(pair["access_token"]),
    )
    assert response.status_code == 422
    assert response.json()["code"] == "wrong_password"
    assert response.json()["errors"][0]["loc"] == ["body", "current_password"]
    assert (await refresh(client, pair["refresh_token"])).status_code == 200
    short = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "short"},
        headers=auth_headers(pair["access_token"]),
    )
    assert short.status_code == 422


async def test_concurrent_reuse_of_one_refresh_token_yields_at_most_one_pair(
    fresh_database: str,
) -> None:
    import asyncio

    from stockroom.main import create_app
    from tests.conftest import http_client, make_settings

    app = create_app(make_settings(fresh_database))
    async with app.router.lifespan_context(app):
        clients = [http_client(app) for _ in range(5)]
        try:
            await clients[0].post(
                "/api/v1/auth/register",
                json={"email": "race@example.com", "password": "pass-word-1", "full_name": "R"},
            )
            pair = await login_pair(clients[0], "race@example.com", "pass-word-1")
            results = await asyncio.gather(*(refresh(c, pair["refresh_token"]) for c in clients))
        finally:
            for c in clients:
                await c.aclose()
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200, 401, 401, 401, 401]
        # The reuse revoked the family: even the winner's new token is dead now.
        winner = next(r for r in results if r.status_code == 200).json()
        async with http_client(app) as c:
            assert (await refresh(c, winner["refresh_token"])).status_code == 401
