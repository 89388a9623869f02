from __future__ import annotations

import re
from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.context import Context
from stockroom.db.engine import create_engine, create_sessionmaker
from stockroom.events import record


async def test_live(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_reports_postgres_and_the_outbox(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["postgres"] == "ok"
    assert body["mongodb"] in {"ok", "degraded"}
    assert isinstance(body["outbox_backlog"], int)
    assert isinstance(body["outbox_oldest_age_s"], float | int)


async def test_request_id_is_echoed_when_sane(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health/live", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_request_id_is_generated_when_absent_or_insane(client: httpx.AsyncClient) -> None:
    generated = (await client.get("/api/v1/health/live")).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    injected = await client.get(
        "/api/v1/health/live", headers={"X-Request-ID": "bad id\twith spaces" + "x" * 200}
    )
    assert injected.headers["x-request-id"] != "bad id\twith spaces"
    assert re.fullmatch(r"[0-9a-f]{32}", injected.headers["x-request-id"])


async def test_security_headers_and_no_server_banner(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health/live")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "server" not in response.headers


async def test_metrics_label_routes_by_template(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/health/live")
    await client.get("/api/v1/does-not-exist/12345")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'route="/api/v1/health/live"' in text
    assert "stockroom_http_request_duration_seconds_bucket" in text
    assert "12345" not in text
    assert 'route="<unmatched>"' in text


async def test_ready_counts_the_undelivered_outbox(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    async with session.begin():
        for _ in range(3):
            record(session, "widget.updated", Context(request_id="r"), entity=("widget", uuid4()))
    body = (await client.get("/api/v1/health/ready")).json()
    assert body["outbox_backlog"] == 3
    assert body["outbox_oldest_age_s"] >= 0
    assert body["mongodb"] == "ok"
    metrics = (await client.get("/metrics")).text
    assert "stockroom_outbox_backlog 3.0" in metrics
    assert "stockroom_relay_lag_seconds" in metrics


async def test_ready_is_503_when_postgres_is_unreachable(
    app: Any, client: httpx.AsyncClient
) -> None:
    working = app.state.sessionmaker
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_size=1)
    app.state.sessionmaker = create_sessionmaker(engine)
    try:
        response = await client.get("/api/v1/health/ready")
    finally:
        app.state.sessionmaker = working
        await engine.dispose()
    assert response.status_code == 503
    assert response.json()["postgres"] == "unavailable"
