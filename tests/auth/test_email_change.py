"""PATCH /users/me changes the email only together with the correct current password, so a
stolen access token alone cannot take the account over."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories.auth import DEFAULT_PASSWORD, auth_headers, login_pair, make_user

ME = "/api/v1/users/me"


async def test_changing_the_email_needs_the_current_password(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    headers = auth_headers((await login_pair(client, user.email))["access_token"])

    missing = await client.patch(ME, json={"email": "thief@example.com"}, headers=headers)
    assert missing.status_code == 422, missing.text
    wrong = await client.patch(
        ME,
        json={"email": "thief@example.com", "current_password": "not the password"},
        headers=headers,
    )
    assert wrong.status_code == 403, wrong.text
    assert wrong.json()["code"] == "wrong_password"
    assert (await client.get(ME, headers=headers)).json()["email"] == user.email

    right = await client.patch(
        ME,
        json={"email": "New.Address@example.com", "current_password": DEFAULT_PASSWORD},
        headers=headers,
    )
    assert right.status_code == 200, right.text
    assert right.json()["email"] == "new.address@example.com"
    await login_pair(client, "new.address@example.com")


async def test_the_name_changes_without_the_password(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    headers = auth_headers((await login_pair(client, user.email))["access_token"])
    response = await client.patch(ME, json={"full_name": "Renamed"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Renamed"


async def test_wrong_current_passwords_count_towards_the_lockout(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    headers = auth_headers((await login_pair(client, user.email))["access_token"])
    body = {"email": "thief@example.com", "current_password": "guess"}
    statuses = [(await client.patch(ME, json=body, headers=headers)).status_code for _ in range(6)]
    assert statuses == [403, 403, 403, 403, 403, 429]
