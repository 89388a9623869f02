"""Security properties users and reviewers rely on, checked against the real app."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.auth.deps import CurrentUser
from stockroom.main import create_app
from stockroom.settings import PUBLISHED_SECRET_KEY, Settings
from tests.conftest import TEST_SECRET_KEY, http_client, make_settings
from tests.factories.auth import bearer_headers, make_user


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(user_id: uuid.UUID) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "sub": str(user_id),
        "sid": str(uuid.uuid4()),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": "x",
        "type": "access",
    }


@pytest.fixture
async def probe_client(private_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = private_app

    @app.get("/_test/whoami")
    async def whoami(user: CurrentUser) -> dict[str, str]:
        return {"email": user.email}

    async with http_client(app) as c:
        yield c


async def test_valid_token_is_accepted(
    probe_client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    user = await make_user(session, roles=["staff"])
    headers = await bearer_headers(session, user.id, settings)
    response = await probe_client.get("/_test/whoami", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"email": user.email}


async def test_alg_none_token_is_rejected(
    probe_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(user.id))}."
    response = await probe_client.get("/_test/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_hs_rs_algorithm_confusion_is_rejected(
    probe_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    # A token claiming RS256, "signed" with what an attacker might use as a shared secret.
    header_and_claims = f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64(claims(user.id))}"
    forged = jwt.api_jws.PyJWS(algorithms=["HS256"]).encode(
        header_and_claims.encode(), TEST_SECRET_KEY, algorithm="HS256"
    )
    signature = forged.rsplit(".", 1)[1]
    token = f"{header_and_claims}.{signature}"
    response = await probe_client.get("/_test/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_token_signed_with_another_key_is_rejected(
    probe_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    token = jwt.encode(claims(user.id), "another-secret-key-of-sufficient-length!!", "HS256")
    response = await probe_client.get("/_test/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_a_token_signed_with_the_once_built_in_key_is_refused_on_a_default_install(
    database_url: str,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    # A default install: no SECRET_KEY, so the key is generated into the data folder.
    settings = make_settings(database_url, secret_key="", stockroom_data_dir=tmp_path)
    assert settings.secret_key not in ("", PUBLISHED_SECRET_KEY)
    admin = await make_user(session, roles=["admin"])
    application = create_app(settings, sessionmaker=sessionmaker)
    new_user = {"email": "forged@example.com", "password": "long-enough-1", "full_name": "F"}
    forged = jwt.encode(claims(admin.id), PUBLISHED_SECRET_KEY, algorithm="HS256")
    async with application.router.lifespan_context(application), http_client(application) as c:
        refused = await c.post(
            "/api/v1/users",
            json={**new_user, "roles": ["admin"]},
            headers={"Authorization": f"Bearer {forged}"},
        )
        assert refused.status_code == 401
        own = await c.get(
            "/api/v1/users/me", headers=await bearer_headers(session, admin.id, settings)
        )
        assert own.status_code == 200


async def test_a_one_megabyte_token_is_rejected_without_being_parsed(
    probe_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a huge token reached the JWT parser")

    monkeypatch.setattr(jwt, "decode", fail)
    token = "a" * 1_048_576
    response = await probe_client.get("/_test/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_cors_allows_only_configured_origins(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    app = create_app(
        make_settings(database_url, cors_origins=["https://shop.example"]),
        sessionmaker=sessionmaker,
    )
    async with app.router.lifespan_context(app), http_client(app) as c:
        allowed = await c.options(
            "/api/v1/health/live",
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"},
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        refused = await c.options(
            "/api/v1/health/live",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in refused.headers
        simple = await c.get("/api/v1/health/live", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in simple.headers


async def test_no_cors_headers_when_no_origin_is_configured(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health/live", headers={"Origin": "https://a.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_hsts_only_in_production(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], client: httpx.AsyncClient
) -> None:
    local = await client.get("/api/v1/health/live")
    assert "strict-transport-security" not in local.headers
    app = create_app(
        make_settings(database_url, environment="production", secret_key="p" * 48),
        sessionmaker=sessionmaker,
    )
    async with app.router.lifespan_context(app), http_client(app) as c:
        response = await c.get("/api/v1/health/live")
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert response.headers["x-content-type-options"] == "nosniff"
