"""The retry schedule, the 410 rule, disabling after 5 days of failures and manual retry, with
the dispatcher's clock moved by the test instead of waiting."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from stockroom.webhooks import service
from stockroom.webhooks.dispatcher import JITTER, RETRY_DELAYS_S, retry_delay
from stockroom.webhooks.models import WebhookEndpoint
from tests.webhooks.conftest import (
    ADMIN_CTX,
    Clock,
    Receiver,
    Sessionmaker,
    deliveries,
    make_endpoint,
    record_events,
)

ATTEMPTS = len(RETRY_DELAYS_S) + 1


def test_the_schedule_is_the_contracts_with_jitter() -> None:
    assert RETRY_DELAYS_S == (5, 300, 1800, 7200, 18000, 36000, 36000)
    for failed, base in enumerate(RETRY_DELAYS_S, start=1):
        delays = [retry_delay(failed) for _ in range(50)]
        assert all(d is not None and base * 0.9 <= d <= base * 1.1 for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert retry_delay(ATTEMPTS) is None


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens there: connection refused


async def _endpoint(sessionmaker: Sessionmaker, endpoint_id: Any) -> WebhookEndpoint:
    async with sessionmaker() as session, session.begin():
        found = await session.get(WebhookEndpoint, endpoint_id)
        assert found is not None
        return found


async def _events_of(sessionmaker: Sessionmaker, type_: str) -> list[dict[str, Any]]:
    async with sessionmaker() as session, session.begin():
        rows = await session.execute(
            text("SELECT payload FROM outbox_events WHERE type = :t ORDER BY occurred_at"),
            {"t": type_},
        )
        return [r.payload for r in rows]


@pytest.mark.parametrize("failure", ["500", "timeout", "refused"])
async def test_failures_follow_the_schedule_until_the_delivery_fails(
    sessionmaker: Sessionmaker,
    receiver: Receiver,
    dispatcher_for: Any,
    clock: Clock,
    failure: str,
) -> None:
    url = _closed_port_url() if failure == "refused" else receiver.url
    receiver.default_status = 500 if failure == "500" else 200
    if failure == "timeout":
        receiver.script = [None] * ATTEMPTS
        receiver.hang_s = 0.6
    endpoint = await make_endpoint(sessionmaker, url)
    await record_events(sessionmaker, "product.created")
    dispatcher = dispatcher_for(sessionmaker, clock=clock, timeout_s=0.3)

    for attempt in range(1, ATTEMPTS + 1):
        before = clock()
        assert await dispatcher.run_once() == 1, f"attempt {attempt} was not made"
        [delivery] = await deliveries(sessionmaker, endpoint.id)
        assert delivery.attempts == attempt
        if attempt < ATTEMPTS:
            base = RETRY_DELAYS_S[attempt - 1]
            wait = (delivery.next_attempt_at - before).total_seconds()
            assert base * (1 - JITTER) - 1 <= wait <= base * (1 + JITTER) + 1
            assert delivery.status == "pending"
            assert await dispatcher.run_once() == 0  # not due before its time
            clock.move_to(delivery.next_attempt_at)
    [delivery] = await deliveries(sessionmaker, endpoint.id)
    assert (delivery.status, delivery.next_attempt_at) == ("failed", None)
    expected_error = {"500": "HTTP 500", "timeout": "timed out", "refused": "connection failed"}
    assert expected_error[failure] in delivery.last_error
    assert delivery.last_status_code == (500 if failure == "500" else None)
    if failure != "refused":
        assert len(receiver.received) == ATTEMPTS
        assert len(set(receiver.ids())) == 1  # the same webhook-id every time


async def test_a_2xx_stops_the_retries(
    sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: Any, clock: Clock
) -> None:
    receiver.script = [500, 503, 204]
    endpoint = await make_endpoint(sessionmaker, receiver.url)
    await record_events(sessionmaker, "product.created")
    dispatcher = dispatcher_for(sessionmaker, clock=clock)
    for _ in range(3):
        await dispatcher.run_once()
        clock.advance(hours=11)
    assert await dispatcher.run_once() == 0
    [delivery] = await deliveries(sessionmaker, endpoint.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 3, 204)
    assert len(receiver.received) == 3
    assert (await _endpoint(sessionmaker, endpoint.id)).failing_since is None


async def test_a_redirect_is_a_failure_and_is_not_followed(
    sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: Any
) -> None:
    receiver.script = [302]
    endpoint = await make_endpoint(sessionmaker, receiver.url)
    await record_events(sessionmaker, "product.created")
    await dispatcher_for(sessionmaker).run_once()
    [delivery] = await deliveries(sessionmaker, endpoint.id)
    assert (delivery.status, delivery.last_status_code) == ("pending", 302)
    assert len(receiver.received) == 1


async def test_410_fails_the_delivery_and_disables_the_endpoint(
    sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: Any
) -> None:
    receiver.script = [410]
    gone = await make_endpoint(sessionmaker, receiver.url, ["product.*"])
    watcher = await make_endpoint(sessionmaker, "http://127.0.0.1:9/", ["webhook.*"])
    await record_events(sessionmaker, "product.created")
    await dispatcher_for(sessionmaker, concurrency=1).run_once()

    [delivery] = await deliveries(sessionmaker, gone.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, 410)
    endpoint = await _endpoint(sessionmaker, gone.id)
    assert not endpoint.is_active
    assert "410" in (endpoint.disabled_reason or "")
    [disabled] = await _events_of(sessionmaker, "webhook.disabled")
    assert disabled["entity"] == {"type": "webhook", "id": str(gone.id)}
    assert endpoint.secret not in str(disabled)
    # Other endpoints hear of it; the disabled one gets nothing more.
    assert [d.event_type for d in await deliveries(sessionmaker, watcher.id)] == [
        "webhook.disabled"
    ]
    await record_events(sessionmaker, "product.updated")
    assert len(await deliveries(sessionmaker, gone.id)) == 1


async def test_five_days_of_failures_disable_the_endpoint(
    sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: Any, clock: Clock
) -> None:
    receiver.default_status = 500
    endpoint = await make_endpoint(sessionmaker, receiver.url, ["product.*"])
    dispatcher = dispatcher_for(sessionmaker, clock=clock)
    # A new event every 12 hours, each failing: the endpoint fails every delivery.
    for _ in range(10):
        await record_events(sessionmaker, "product.updated")
        async with sessionmaker() as session, session.begin():
            await session.execute(
                text("UPDATE webhook_deliveries SET next_attempt_at = :now WHERE status='pending'"),
                {"now": clock()},
            )
        await dispatcher.run_once()
        assert (await _endpoint(sessionmaker, endpoint.id)).is_active
        clock.advance(hours=12)
    await record_events(sessionmaker, "product.updated")
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE webhook_deliveries SET next_attempt_at = :now WHERE status='pending'"),
            {"now": clock()},
        )
    await dispatcher.run_once()  # 5 days after the first failure

    found = await _endpoint(sessionmaker, endpoint.id)
    assert not found.is_active
    assert found.disabled_reason == "every delivery failed for 5 days"
    assert len(await _events_of(sessionmaker, "webhook.disabled")) == 1
    assert {d.status for d in await deliveries(sessionmaker, endpoint.id)} == {"failed"}


async def test_a_success_in_between_restarts_the_five_days(
    sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: Any, clock: Clock
) -> None:
    receiver.script = [500, 200, 500, 500]
    endpoint = await make_endpoint(sessionmaker, receiver.url, ["product.*"])
    dispatcher = dispatcher_for(sessionmaker, clock=clock)
    await record_events(sessionmaker, "product.created")
    assert await dispatcher.run_once() == 1  # day 0: fails
    clock.advance(days=3)
    assert await dispatcher.run_once() == 1  # day 3: its retry succeeds
    assert (await _endpoint(sessionmaker, endpoint.id)).failing_since is None
    clock.advance(days=3)
    await record_events(sessionmaker, "product.updated")
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE webhook_deliveries SET next_attempt_at = :now WHERE status='pending'"),
            {"now": clock()},
        )
    assert await dispatcher.run_once() == 1  # day 6: fails
    clock.advance(days=3)
    assert await dispatcher.run_once() == 1  # day 9: fails, 3 days after the last success
    found = await _endpoint(sessionmaker, endpoint.id)
    assert found.is_active
    assert found.failing_since is not None


async def test_manual_retry_queues_a_failed_delivery_again(
    sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: Any, clock: Clock
) -> None:
    receiver.script = [500] * ATTEMPTS
    endpoint = await make_endpoint(sessionmaker, receiver.url)
    await record_events(sessionmaker, "product.created")
    dispatcher = dispatcher_for(sessionmaker, clock=clock)
    for _ in range(ATTEMPTS):
        await dispatcher.run_once()
        clock.advance(hours=11)
    [failed] = await deliveries(sessionmaker, endpoint.id)
    assert failed.status == "failed"

    async with sessionmaker() as session:
        queued = await service.retry_delivery(
            session, endpoint.id, failed.id, ADMIN_CTX, now=clock()
        )
    assert queued.status == "pending"
    assert await dispatcher.run_once() == 1
    [done] = await deliveries(sessionmaker, endpoint.id)
    assert (done.status, done.attempts, done.last_status_code) == ("succeeded", 1, 200)
    assert len(receiver.received) == ATTEMPTS + 1
    assert len(set(receiver.ids())) == 1


async def test_an_attempt_outliving_its_lease_is_made_again_with_the_same_id(
    sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: Any, clock: Clock
) -> None:
    """What a crash mid-attempt leaves behind: a claimed delivery whose outcome never arrives."""
    endpoint = await make_endpoint(sessionmaker, receiver.url)
    await record_events(sessionmaker, "product.created")
    first = dispatcher_for(sessionmaker, clock=clock)
    [(claimed, _lease)] = await first.claim(10)  # then the process "dies"

    second = dispatcher_for(sessionmaker, clock=clock)
    assert await second.run_once() == 0  # still leased
    clock.advance(seconds=first.lease.total_seconds() + 1)
    assert await second.run_once() == 1
    [delivery] = await deliveries(sessionmaker, endpoint.id)
    assert delivery.status == "succeeded"
    assert receiver.ids() == [str(claimed.event_id)]
    assert timedelta(0) < first.lease <= timedelta(seconds=30)
