"""What the edge of the API shows: forwarded headers, /metrics, token caching, redirects."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.settings import Settings
from tests.conftest import make_settings
from tests.factories.auth import DEFAULT_PASSWORD, make_user, outbox_payloads
from tests.support.servers import free_port, running_server

METRICS_TOKEN = "metrics-token-0123456789abcdef"


def client_from(app: Any, host: str, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(host, 40000)),
        base_url="http://testserver",
        **kwargs,
    )


async def failed_login_ip(app: Any, session: AsyncSession, peer: str) -> str:
    user = await make_user(session)
    async with client_from(app, peer, headers={"X-Forwarded-For": "6.6.6.6"}) as c:
        response = await c.post(
            "/api/v1/auth/login-json", json={"email": user.email, "password": "wrong-password"}
        )
    assert response.status_code == 401
    events = await outbox_payloads(session, "auth.login_failed")
    ip: str = events[-1]["request"]["ip"]
    return ip


async def test_forwarded_headers_are_ignored_by_default(app: Any, session: AsyncSession) -> None:
    assert await failed_login_ip(app, session, "127.0.0.1") == "127.0.0.1"


@pytest.fixture
async def behind_proxy(database_url: str, sessionmaker: Any) -> AsyncIterator[Any]:
    from stockroom.main import create_app

    settings = make_settings(database_url, forwarded_allow_ips="10.0.0.0/24")
    application = create_app(settings, sessionmaker=sessionmaker)
    async with application.router.lifespan_context(application):
        yield application


async def test_forwarded_headers_are_believed_from_the_configured_proxy_only(
    behind_proxy: Any, session: AsyncSession
) -> None:
    assert await failed_login_ip(behind_proxy, session, "10.0.0.7") == "6.6.6.6"
    assert await failed_login_ip(behind_proxy, session, "10.0.1.7") == "10.0.1.7"


def test_forwarded_allow_ips_must_be_addresses_or_networks() -> None:
    assert make_settings(forwarded_allow_ips="10.0.0.1, 172.28.0.0/16").forwarded_allow_ips == [
        "10.0.0.1",
        "172.28.0.0/16",
    ]
    assert make_settings().forwarded_allow_ips == []
    with pytest.raises(ValueError, match="traefik"):
        make_settings(forwarded_allow_ips="traefik")


async def test_metrics_answer_loopback_clients_only_without_a_token(app: Any) -> None:
    async with client_from(app, "127.0.0.1") as local:
        assert (await local.get("/metrics")).status_code == 200
    async with client_from(app, "203.0.113.9") as remote:
        refused = await remote.get("/metrics")
    assert refused.status_code == 403
    assert "stockroom_http_requests_total" not in refused.text


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    overrides = getattr(request, "param", {})
    return make_settings(database_url, **overrides)


@pytest.mark.parametrize("settings", [{"metrics_token": METRICS_TOKEN}], indirect=True)
async def test_metrics_need_the_token_when_one_is_set(app: Any) -> None:
    async with client_from(app, "127.0.0.1") as local:
        missing = await local.get("/metrics")
        wrong = await local.get("/metrics", headers={"Authorization": "Bearer nope"})
    async with client_from(app, "203.0.113.9") as remote:
        right = await remote.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200
    assert "stockroom_http_requests_total" in right.text


async def test_token_responses_are_not_cached(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    login = await client.post(
        "/api/v1/auth/login-json", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    form = await client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": DEFAULT_PASSWORD}
    )
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    for response in (login, form, refreshed):
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"


async def test_the_trailing_slash_redirect_does_not_reflect_the_host_header(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/api/v1/health/live/?x=1", headers={"Host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code in {307, 308}
    assert response.headers["location"] == "/api/v1/health/live?x=1"


@pytest.mark.slow
def test_a_real_server_believes_no_forwarded_header_and_pins_its_redirects(
    tmp_path: Path,
) -> None:
    email, password = f"edge-{uuid.uuid4().hex[:6]}@example.com", "edge-admin-password-0123"
    with running_server(
        tmp_path / "data",
        free_port(),
        SECRET_KEY="edge-secret-key-0123456789abcdef0123456789",
        FIRST_ADMIN_EMAIL=email,
        FIRST_ADMIN_PASSWORD=password,
        LOG_LEVEL="WARNING",
    ) as (_, base):
        spoofed = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
        failed = httpx.post(
            f"{base}/api/v1/auth/login-json",
            json={"email": email, "password": "wrong-password"},
            headers=spoofed,
        )
        assert failed.status_code == 401
        redirect = httpx.get(
            f"{base}/api/v1/health/live/", headers={"Host": "evil.example", **spoofed}
        )
        assert redirect.headers["location"] == "/api/v1/health/live"
        token = httpx.post(
            f"{base}/api/v1/auth/login-json", json={"email": email, "password": password}
        ).json()["access_token"]
        deadline = time.monotonic() + 30  # the relay delivers within a second or so
        ips: set[str] = set()
        while not ips and time.monotonic() < deadline:
            events = httpx.get(
                f"{base}/api/v1/activity",
                params={"type": "auth.login_failed"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert events.status_code == 200, events.text
            ips = {e["request"]["ip"] for e in events.json()["items"]}
            time.sleep(0.2)
        assert ips == {"127.0.0.1"}
