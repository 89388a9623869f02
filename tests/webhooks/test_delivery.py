"""Deliveries as a receiver sees them: one signed POST per event and matching endpoint."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from stockroom.webhooks.models import WebhookEndpoint
from tests.webhooks.conftest import (
    Clock,
    Receiver,
    Sessionmaker,
    deliveries,
    make_endpoint,
    record_events,
)


async def _secret(sessionmaker: Sessionmaker, endpoint: WebhookEndpoint) -> str:
    async with sessionmaker() as session, session.begin():
        found = await session.get(WebhookEndpoint, endpoint.id)
        assert found is not None
        return found.secret


async def test_a_delivery_verifies_with_the_standard_webhooks_library(
    sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: object
) -> None:
    endpoint = await make_endpoint(sessionmaker, receiver.url, ["stock.*"])
    [event_id] = await record_events(sessionmaker, "stock.movement_posted", data={"quantity": 3})

    assert await dispatcher_for(sessionmaker).run_once() == 1  # type: ignore[operator]

    [got] = receiver.received
    assert got.headers["webhook-id"] == str(event_id)
    assert got.headers["content-type"] == "application/json"
    verified = Webhook(await _secret(sessionmaker, endpoint)).verify(got.body, got.headers)
    assert verified["id"] == str(event_id)
    assert verified["type"] == "stock.movement_posted"
    assert verified["data"] == {"quantity": 3}
    assert set(verified) >= {"id", "type", "occurred_at", "actor", "entity", "request", "data"}
    [delivery] = await deliveries(sessionmaker, endpoint.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.delivered_at is not None


async def test_a_tampered_body_or_another_secret_does_not_verify(
    sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: object
) -> None:
    endpoint = await make_endpoint(sessionmaker, receiver.url)
    await record_events(sessionmaker, "product.created", data={"sku": "A-1"})
    await dispatcher_for(sessionmaker).run_once()  # type: ignore[operator]

    [got] = receiver.received
    secret = await _secret(sessionmaker, endpoint)
    tampered = got.body.replace(b'"A-1"', b'"A-2"')
    assert tampered != got.body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(got.body, got.headers)
    Webhook(secret).verify(got.body, got.headers)  # the genuine one does


async def test_a_delivery_signed_long_ago_does_not_verify(
    sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: object, clock: Clock
) -> None:
    endpoint = await make_endpoint(sessionmaker, receiver.url)
    await record_events(sessionmaker, "product.created")
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 hour'")
        )
    clock.advance(minutes=-10)  # the dispatcher signs with a timestamp 10 minutes old
    await dispatcher_for(sessionmaker, clock=clock).run_once()  # type: ignore[operator]

    [got] = receiver.received
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(await _secret(sessionmaker, endpoint)).verify(got.body, got.headers)


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["*"], {"stock.movement_posted", "stock_x.moved", "product.created", "product.updated"}),
        (["stock.*"], {"stock.movement_posted"}),
        (["product.created"], {"product.created"}),
        (["product.*", "stock.movement_posted"], {"product.created", "product.updated",
                                                  "stock.movement_posted"}),
        (["stock_*"], {"stock_x.moved"}),
        (["product.deleted"], set()),
    ],
)  # fmt: skip
async def test_endpoints_get_the_events_their_patterns_match(
    sessionmaker: Sessionmaker, patterns: list[str], expected: set[str]
) -> None:
    endpoint = await make_endpoint(sessionmaker, "http://127.0.0.1:9/", patterns)
    # `stock_x` would match `stock.*` if `.` or `_` were wildcards: they are not.
    await record_events(
        sessionmaker, "stock.movement_posted", "stock_x.moved", "product.created", "product.updated"
    )
    got = {d.event_type for d in await deliveries(sessionmaker, endpoint.id)}
    assert got == expected


async def test_one_delivery_per_event_and_endpoint_and_none_for_inactive_endpoints(
    sessionmaker: Sessionmaker,
) -> None:
    first = await make_endpoint(sessionmaker, "http://127.0.0.1:9/a", ["*"])
    second = await make_endpoint(sessionmaker, "http://127.0.0.1:9/b", ["stock.*", "*"])
    inactive = await make_endpoint(sessionmaker, "http://127.0.0.1:9/c", ["*"], is_active=False)
    ids = await record_events(sessionmaker, "stock.movement_posted", "product.created")

    rows = await deliveries(sessionmaker)
    assert sorted((r.endpoint_id, r.event_id) for r in rows) == sorted(
        (e.id, i) for e in (first, second) for i in ids
    )
    assert all(r.endpoint_id != inactive.id for r in rows)


async def test_a_rolled_back_event_has_no_delivery(sessionmaker: Sessionmaker) -> None:
    await make_endpoint(sessionmaker, "http://127.0.0.1:9/", ["*"])

    class Abort(Exception):
        pass

    from stockroom.events import record
    from tests.webhooks.conftest import ADMIN_CTX

    async def record_then_fail() -> None:
        async with sessionmaker() as session, session.begin():
            record(session, "product.created", ADMIN_CTX)
            raise Abort

    with pytest.raises(Abort):
        await record_then_fail()
    assert await deliveries(sessionmaker) == []


async def test_cost_fields_are_sent_only_to_endpoints_that_include_costs(
    sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: object
) -> None:
    with_costs = await make_endpoint(
        sessionmaker, receiver.url + "?costs=1", ["stock.*"], include_costs=True
    )
    await make_endpoint(sessionmaker, receiver.url + "?costs=0", ["stock.*"])
    data = {"quantity": 2, "unit_cost": "4.50", "lines": [{"cost_price": "1.00", "sku": "A"}]}
    await record_events(sessionmaker, "stock.movement_posted", data=data)
    await dispatcher_for(sessionmaker).run_once()  # type: ignore[operator]

    bodies = {r.path: r.event for r in receiver.received}
    assert bodies["/hook?costs=1"]["data"] == data
    assert bodies["/hook?costs=0"]["data"] == {"quantity": 2, "lines": [{"sku": "A"}]}
    assert "4.50" not in json.dumps(bodies["/hook?costs=0"])
    assert with_costs.include_costs


async def test_during_a_rotation_both_secrets_sign_and_after_24_hours_only_the_new_one(
    sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: object, clock: Clock
) -> None:
    from stockroom.webhooks import service
    from tests.webhooks.conftest import ADMIN_CTX

    endpoint = await make_endpoint(sessionmaker, receiver.url)
    old = await _secret(sessionmaker, endpoint)
    async with sessionmaker() as session:
        new, until = await service.rotate_secret(session, endpoint.id, ADMIN_CTX)
    assert new != old
    assert new.startswith("whsec_")
    dispatcher = dispatcher_for(sessionmaker, clock=clock)  # type: ignore[operator]

    await record_events(sessionmaker, "product.created")
    await dispatcher.run_once()
    during = receiver.received[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(during.body, during.headers)
    Webhook(new).verify(during.body, during.headers)

    clock.move_to(until + timedelta(seconds=1))
    await record_events(sessionmaker, "product.updated")
    await dispatcher.run_once()
    after = receiver.received[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers, json_parse=False)
