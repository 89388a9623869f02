"""POST /auth/register: open registration, no roles, mass-assignment safe."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth.models import User
from stockroom.main import create_app
from tests.conftest import http_client, make_settings

REGISTER = "/api/v1/auth/register"


def body(**overrides: Any) -> dict[str, Any]:
    return {"email": "new.user@example.com", "password": "long enough pw", "full_name": "New"} | (
        overrides
    )


async def test_registered_user_gets_no_roles_and_can_log_in(client: httpx.AsyncClient) -> None:
    response = await client.post(REGISTER, json=body(email="New.User@Example.com"))
    assert response.status_code == 201
    user = response.json()
    assert user["email"] == "new.user@example.com"
    assert user["roles"] == []
    assert user["permissions"] == []
    assert user["is_active"] is True
    assert response.headers["Location"] == f"/api/v1/users/{user['id']}"
    assert "password" not in response.text
    assert "hash" not in response.text

    login = await client.post(
        "/api/v1/auth/login-json",
        json={"email": "NEW.user@example.com", "password": "long enough pw"},
    )
    assert login.status_code == 200
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.json()["roles"] == []


async def test_duplicate_email_in_any_case_is_409(client: httpx.AsyncClient) -> None:
    assert (await client.post(REGISTER, json=body())).status_code == 201
    response = await client.post(REGISTER, json=body(email="NEW.USER@example.COM"))
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "email_taken"


@pytest.mark.parametrize(
    ("field", "value"),
    [("password", "pw1234"), ("email", "not-an-email"), ("full_name", "   ")],
)
async def test_invalid_registration_is_422(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    response = await client.post(REGISTER, json=body(**{field: value}))
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["loc"] == ["body", field]
    assert value not in response.text or field == "full_name"  # inputs are never echoed


@pytest.mark.parametrize(
    "extra",
    [
        {"roles": ["admin"]},
        {"is_active": False},
        {"is_superuser": True},
        {"permissions": ["users:write"]},
        {"id": "0190b7a4-0000-7000-8000-000000000000"},
    ],
)
async def test_mass_assignment_never_grants_anything(
    client: httpx.AsyncClient, session: AsyncSession, extra: dict[str, Any]
) -> None:
    response = await client.post(REGISTER, json=body() | extra)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", next(iter(extra))]
    assert await session.scalar(select(User).where(User.email == "new.user@example.com")) is None


async def test_registration_disabled_by_settings_is_403(
    settings: Any, sessionmaker: Any, session: AsyncSession
) -> None:
    closed = create_app(
        make_settings(settings.database_url, allow_registration=False), sessionmaker=sessionmaker
    )
    async with closed.router.lifespan_context(closed), http_client(closed) as client:
        response = await client.post(REGISTER, json=body())
    assert response.status_code == 403
    assert response.json()["code"] == "registration_closed"
    assert await session.scalar(select(User).where(User.email == "new.user@example.com")) is None


def test_registration_is_closed_by_default_in_production() -> None:
    production = make_settings(environment="production", secret_key="x" * 40)
    assert production.registration_open is False
    assert make_settings().registration_open is True


async def test_the_database_refuses_a_mixed_case_email(session: AsyncSession) -> None:
    from sqlalchemy.exc import IntegrityError

    session.add(User(email="Mixed@Example.com", full_name="M", password_hash="x"))
    with pytest.raises(IntegrityError, match="ck_users_email_lower_case"):
        await session.flush()
