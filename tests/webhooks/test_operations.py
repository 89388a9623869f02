"""The dispatcher as deployed: inside the app's lifespan (so inside `serve`), turned off by its
setting, https-only in production, the 64 KiB response cap, metrics and readiness fields."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import httpcore
from sqlalchemy import text
from standardwebhooks import Webhook

from stockroom.db.engine import create_engine, create_sessionmaker
from stockroom.http.metrics import REGISTRY
from stockroom.main import create_app
from stockroom.webhooks.client import MAX_RESPONSE_BYTES, WebhookClient
from stockroom.webhooks.guard import Address, TargetGuard
from stockroom.webhooks.lifespan import running_dispatcher, target_guard
from tests.conftest import make_settings
from tests.webhooks.conftest import (
    Receiver,
    Sessionmaker,
    deliveries,
    make_endpoint,
    record_events,
)


async def _wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def test_the_app_runs_the_dispatcher_and_deliveries_arrive(
    fresh_database: str, receiver: Receiver
) -> None:
    """What `stockroom serve` runs: the app's lifespan starts the dispatcher."""
    settings = make_settings(
        fresh_database, webhook_dispatcher_enabled=True, webhook_allow_private_targets=True
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        sessionmaker = app.state.sessionmaker
        endpoint = await make_endpoint(sessionmaker, receiver.url, ["product.*"])
        [event_id] = await record_events(sessionmaker, "product.created")

        async def arrived() -> bool:
            return len(receiver.received) == 1

        await _wait_for(arrived)
        [got] = receiver.received
        assert got.headers["webhook-id"] == str(event_id)
        Webhook(endpoint.secret).verify(got.body, got.headers)

        async def recorded() -> bool:
            [delivery] = await deliveries(sessionmaker, endpoint.id)
            return bool(delivery.status == "succeeded")

        await _wait_for(recorded)


async def test_the_setting_turns_the_dispatcher_off(
    fresh_database: str, receiver: Receiver
) -> None:
    settings = make_settings(fresh_database, webhook_dispatcher_enabled=False)
    engine = create_engine(fresh_database, pool_size=2)
    try:
        sessionmaker = create_sessionmaker(engine)
        async with running_dispatcher(settings, sessionmaker) as dispatcher:
            assert dispatcher is None
            endpoint = await make_endpoint(sessionmaker, receiver.url)
            await record_events(sessionmaker, "product.created")
            await asyncio.sleep(1.0)
        assert receiver.received == []
        [delivery] = await deliveries(sessionmaker, endpoint.id)
        assert (delivery.status, delivery.attempts) == ("pending", 0)
    finally:
        await engine.dispose()


def test_production_guard_requires_https_and_public_targets() -> None:
    production = target_guard(make_settings(environment="production"))
    assert (production.require_https, production.allow_private) == (True, False)
    local = target_guard(make_settings(webhook_allow_private_targets=True))
    assert (local.require_https, local.allow_private) == (False, True)


class _Endless(httpcore.AsyncNetworkBackend):
    """A target that answers 200 with a 100 MiB body, in 4 KiB chunks, counting what is read."""

    def __init__(self) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n"
        self.chunks = [head, *([b"x" * 4096] * 25_600)]
        self.total = len(self.chunks)

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return httpcore.AsyncMockStream(self.chunks)

    async def sleep(self, seconds: float) -> None:
        pass

    @property
    def bytes_read(self) -> int:
        return (self.total - len(self.chunks) - 1) * 4096


async def test_at_most_64_kib_of_a_response_is_read() -> None:
    async def resolve(host: str, port: int) -> list[Address]:
        return [ipaddress.ip_address("93.184.216.34")]

    network = _Endless()
    client = WebhookClient(TargetGuard(resolver=resolve), network_backend=network)
    try:
        outcome = await client.post("http://receiver.example/hook", b"{}", {})
    finally:
        await client.aclose()
    assert (outcome.status_code, outcome.error) == (200, None)
    assert outcome.excerpt == "x" * 1000
    assert MAX_RESPONSE_BYTES <= network.bytes_read <= MAX_RESPONSE_BYTES + 64 * 1024
    assert len(network.chunks) > 20_000  # the rest of the 100 MiB was never read


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_and_readiness_report_outcomes_and_the_backlog(
    client: Any, sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: Any
) -> None:
    receiver.script = [500]
    failing = await make_endpoint(sessionmaker, receiver.url + "?fails", ["product.*"])
    idle = await make_endpoint(sessionmaker, "http://127.0.0.1:9/idle", ["other.*"])
    await record_events(sessionmaker, "product.created", "product.updated", "other.thing")
    async with sessionmaker() as session, session.begin():  # the oldest has waited a minute
        await session.execute(
            text("UPDATE webhook_deliveries SET created_at = now() - interval '60 seconds'")
        )
        await session.execute(  # the idle endpoint's delivery waits for a retry an hour away
            text(
                "UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour' "
                "WHERE endpoint_id = :id"
            ),
            {"id": idle.id},
        )

    ready = (await client.get("/api/v1/health/ready")).json()
    assert ready["webhook_backlog"] == 3
    assert 59 <= ready["webhook_oldest_age_s"] <= 120

    succeeded = _sample("stockroom_webhook_attempts_total", outcome="succeeded")
    retrying = _sample("stockroom_webhook_attempts_total", outcome="retrying")
    dispatcher = dispatcher_for(sessionmaker, concurrency=1)
    await dispatcher.run_once()  # the first delivery fails: 500
    await dispatcher.run_once()  # the second succeeds
    assert _sample("stockroom_webhook_attempts_total", outcome="retrying") == retrying + 1
    assert _sample("stockroom_webhook_attempts_total", outcome="succeeded") == succeeded + 1
    assert {d.status for d in await deliveries(sessionmaker, failing.id)} == {
        "pending",
        "succeeded",
    }

    ready = (await client.get("/api/v1/health/ready")).json()
    assert ready["webhook_backlog"] == 2  # one retrying, the idle endpoint's waiting
    metrics = (await client.get("/metrics")).text
    assert "stockroom_webhook_backlog 2.0" in metrics
    assert "stockroom_webhook_oldest_pending_age_seconds" in metrics
    assert 'stockroom_webhook_attempts_total{outcome="retrying"}' in metrics
