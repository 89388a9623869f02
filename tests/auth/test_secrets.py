"""No password, hash or token ever enters an activity event or a log line."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth.models import RefreshToken, User
from tests.conftest import ClientAs
from tests.factories.auth import DEFAULT_PASSWORD, auth_headers, login_pair, outbox_payloads

PASSWORDS = ["first password 1", "second password 2", "admin set password 3", "wrong guess 4"]


async def test_a_full_account_lifecycle_leaves_no_secret_in_any_event(
    client: httpx.AsyncClient,
    client_as: ClientAs,
    session: AsyncSession,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = await client_as("admin")
    secrets: set[str] = set(PASSWORDS) | {DEFAULT_PASSWORD}
    created = await client.post(
        "/api/v1/auth/register",
        json={"email": "life@example.com", "password": PASSWORDS[0], "full_name": "Life"},
    )
    user_id = created.json()["id"]
    await client.post(
        "/api/v1/auth/login-json", json={"email": "life@example.com", "password": PASSWORDS[3]}
    )
    pair = await login_pair(client, "life@example.com", PASSWORDS[0])
    rotated = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    ).json()
    await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    fresh = await login_pair(client, "life@example.com", PASSWORDS[0])
    headers = auth_headers(fresh["access_token"])
    await client.post(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORDS[0], "new_password": PASSWORDS[1]},
        headers=headers,
    )
    await admin.patch(
        f"/api/v1/users/{user_id}", json={"password": PASSWORDS[2], "roles": ["staff"]}
    )
    last = await login_pair(client, "life@example.com", PASSWORDS[2])
    await client.get("/api/v1/users", headers=auth_headers(last["access_token"]))
    await client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": last["refresh_token"]},
        headers=auth_headers(last["access_token"]),
    )
    await admin.delete(f"/api/v1/users/{user_id}")

    for pair_ in (pair, rotated, fresh, last):
        secrets |= {pair_["access_token"], pair_["refresh_token"]}
    secrets |= set(await session.scalars(select(User.password_hash)))
    secrets |= set(await session.scalars(select(RefreshToken.token_hash)))

    payloads: list[dict[str, Any]] = await outbox_payloads(session)
    types = {p["type"] for p in payloads}
    assert {
        "user.created",
        "auth.login_failed",
        "auth.login_succeeded",
        "auth.refresh_reused",
        "user.updated",
        "user.roles_changed",
        "auth.logged_out",
        "auth.permission_denied",
        "user.deactivated",
    } <= types
    dumped = str(payloads)
    logged = caplog.text + capsys.readouterr().err
    for secret in secrets:
        assert secret not in dumped
        assert secret not in logged
