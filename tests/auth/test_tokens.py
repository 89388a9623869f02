"""Access tokens: every bad token is a 401 with `WWW-Authenticate: Bearer`."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth.tokens import create_access_token
from stockroom.settings import Settings
from tests.factories.auth import make_user, start_session

ME = "/api/v1/users/me"


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(
        data, default=lambda v: int(v.timestamp()) if isinstance(v, datetime) else str(v)
    ).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(user_id: uuid.UUID, sid: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "sub": str(user_id),
        "sid": str(sid),
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=15),
        "jti": uuid.uuid4().hex,
        "type": "access",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def sign(payload: dict[str, Any], settings: Settings) -> str:
    return jwt.encode(payload, settings.secret_key, algorithm="HS256")


async def assert_401(client: httpx.AsyncClient, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = await client.get(ME, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_authenticated"


async def test_a_valid_token_reaches_the_profile(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    user = await make_user(session, roles=["staff"])
    token = sign(claims(user.id, await start_session(session, user.id)), settings)
    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["roles"] == ["staff"]


async def test_missing_or_non_bearer_credentials_are_401(client: httpx.AsyncClient) -> None:
    await assert_401(client, None)
    response = await client.get(ME, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not_yet_valid",
        "issued_in_the_future",
        "tampered_signature",
        "tampered_payload",
        "alg_none",
        "other_algorithm",
        "refresh_type",
        "missing_type",
        "wrong_key",
        "unknown_sub",
        "garbage_sub",
        "garbage",
        "too_long",
    ],
)
async def test_bad_access_tokens_are_401(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, case: str
) -> None:
    user = await make_user(session, roles=["admin"])
    sid = await start_session(session, user.id)  # live: each case fails for its own reason
    now = datetime.now(UTC)
    good = sign(claims(user.id, sid), settings)
    header, payload, signature = good.split(".")
    token: str
    if case == "expired":
        token = sign(
            claims(user.id, sid, iat=now - timedelta(hours=1), exp=now - timedelta(minutes=1)),
            settings,
        )
    elif case == "not_yet_valid":
        token = sign(claims(user.id, sid, nbf=now + timedelta(minutes=5)), settings)
    elif case == "issued_in_the_future":
        token = sign(claims(user.id, sid, iat=now + timedelta(minutes=5)), settings)
    elif case == "tampered_signature":
        flipped = "A" if signature[0] != "A" else "B"
        token = f"{header}.{payload}.{flipped}{signature[1:]}"
    elif case == "tampered_payload":
        other = await make_user(session)
        token = f"{header}.{b64(claims(other.id, sid))}.{signature}"
    elif case == "alg_none":
        token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(user.id, sid))}."
    elif case == "other_algorithm":
        token = jwt.encode(claims(user.id, sid), settings.secret_key, algorithm="HS384")
    elif case == "refresh_type":
        token = sign(claims(user.id, sid, type="refresh"), settings)
    elif case == "missing_type":
        token = sign({k: v for k, v in claims(user.id, sid).items() if k != "type"}, settings)
    elif case == "wrong_key":
        token = jwt.encode(
            claims(user.id, sid), "another-secret-key-of-sufficient-length-xx", "HS256"
        )
    elif case == "unknown_sub":
        token = sign(claims(uuid.uuid4(), sid), settings)
    elif case == "garbage_sub":
        token = sign(claims(user.id, sid, sub="admin"), settings)
    elif case == "garbage":
        token = "not.a.jwt"
    else:
        token = "a" * 5000
    await assert_401(client, token)


async def test_deactivated_users_token_is_401_on_the_next_request(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    user = await make_user(session, roles=["admin"])
    token, _ = create_access_token(user.id, await start_session(session, user.id), settings)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get(ME, headers=headers)).status_code == 200
    user.is_active = False
    await session.flush()
    await assert_401(client, token)


async def test_refresh_token_is_not_an_access_token(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, email="refresh-as-access@example.com")
    from tests.factories.auth import login_pair

    pair = await login_pair(client, "refresh-as-access@example.com")
    await assert_401(client, pair["refresh_token"])


async def test_openapi_offers_the_password_flow_for_swagger_authorize(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    [scheme] = schemes.values()
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/login"
    name = next(iter(schemes))
    assert {name: []} in schema["paths"]["/api/v1/users/me"]["get"]["security"]
    assert "security" not in schema["paths"]["/api/v1/auth/login-json"]["post"]
    form = schema["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in form
