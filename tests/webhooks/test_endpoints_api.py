"""The webhooks API: endpoints, secrets shown once, test pings, deliveries and retries."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.webhooks.guard import TargetGuard
from tests.webhooks.conftest import Receiver, Sessionmaker, deliveries

URL = "https://hooks.example/stockroom?token=abc"


@pytest.fixture
async def admin(client_as: Any, app: Any) -> Any:
    app.state.webhook_guard = TargetGuard(allow_private=True, resolver=_resolve_anything)
    return await client_as("admin")


async def _resolve_anything(host: str, port: int) -> list[Any]:
    import ipaddress

    return [ipaddress.ip_address("127.0.0.1")]


async def _create(admin: Any, **body: Any) -> dict[str, Any]:
    response = await admin.post(
        "/api/v1/webhooks", json={"url": URL, "event_types": ["stock.*"], **body}
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/api/v1/webhooks/{response.json()['id']}"
    created: dict[str, Any] = response.json()
    return created


async def test_create_shows_the_secret_once_and_never_again(
    admin: Any, session: AsyncSession
) -> None:
    created = await _create(admin, description="ERP", include_costs=True)
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert created["event_types"] == ["stock.*"]
    assert (created["is_active"], created["include_costs"]) == (True, True)
    endpoint = f"/api/v1/webhooks/{created['id']}"

    rotated = await admin.post(f"{endpoint}/rotate-secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != secret

    ping = await admin.post(f"{endpoint}/test")
    responses = [
        await admin.get(endpoint),
        await admin.get("/api/v1/webhooks"),
        await admin.patch(endpoint, json={"description": "ERP 2"}),
        await admin.get(f"{endpoint}/deliveries"),
        await admin.get(f"{endpoint}/deliveries/{ping.json()['delivery_id']}/attempts"),
        ping,
    ]
    for response in responses:
        assert response.status_code in (200, 202), response.text
        assert secret not in response.text
        assert new_secret not in response.text
        assert "secret" not in response.text.replace("rotate-secret", "")
    payloads = (await session.execute(text("SELECT payload::text FROM outbox_events"))).scalars()
    webhook_events = [p for p in payloads if '"webhook.' in p]
    assert len(webhook_events) >= 4  # created, secret_rotated, test, updated
    for payload in webhook_events:
        assert secret not in payload
        assert new_secret not in payload
        assert "token=abc" not in payload  # the query string stays out of the audit log


async def test_endpoints_can_be_read_changed_and_deleted(admin: Any) -> None:
    created = await _create(admin)
    endpoint = f"/api/v1/webhooks/{created['id']}"
    got = await admin.get(endpoint)
    assert got.status_code == 200
    assert got.json()["url"] == URL
    etag = got.headers["etag"]

    changed = await admin.patch(
        endpoint, json={"event_types": ["product.*", "*"], "is_active": False},
        headers={"If-Match": etag},
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert (changed.json()["event_types"], changed.json()["is_active"]) == (
        ["product.*", "*"],
        False,
    )
    stale = await admin.patch(endpoint, json={"description": "x"}, headers={"If-Match": etag})
    assert stale.status_code == 412

    assert (await admin.delete(endpoint)).status_code == 204
    assert (await admin.get(endpoint)).status_code == 404
    assert (await admin.get("/api/v1/webhooks")).json()["total"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"url": URL, "event_types": []},
        {"url": URL, "event_types": ["stock.**"]},
        {"url": URL, "event_types": ["*.created"]},
        {"url": URL, "event_types": ["stock .*"]},
        {"url": "", "event_types": ["*"]},
        {"event_types": ["*"]},
        {"url": URL, "event_types": ["*"], "secret": "whsec_mine"},
    ],
)
async def test_invalid_endpoints_are_422(admin: Any, body: dict[str, Any]) -> None:
    response = await admin.post("/api/v1/webhooks", json=body)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("role", ["manager", "staff", "analyst"])
async def test_only_webhooks_manage_may_use_the_api(client_as: Any, role: str) -> None:
    user = await client_as(role)
    assert (await user.get("/api/v1/webhooks")).status_code == 403
    response = await user.post("/api/v1/webhooks", json={"url": URL, "event_types": ["*"]})
    assert response.status_code == 403


async def test_unknown_endpoints_and_deliveries_are_404(admin: Any) -> None:
    missing = "/api/v1/webhooks/01890000-0000-7000-8000-000000000000"
    assert (await admin.get(missing)).json()["code"] == "not_found"
    assert (await admin.post(f"{missing}/test")).status_code == 404
    created = await _create(admin)
    retry = await admin.post(
        f"/api/v1/webhooks/{created['id']}/deliveries/01890000-0000-7000-8000-000000000000/retry"
    )
    assert retry.status_code == 404


async def test_the_test_ping_goes_to_that_endpoint_only_and_can_be_retried(
    admin: Any, app: Any, sessionmaker: Sessionmaker, receiver: Receiver, dispatcher_for: Any
) -> None:
    from standardwebhooks import Webhook

    receiver.script = [500] * 8
    created = await _create(admin, url=receiver.url, event_types=["*"])
    other = await _create(admin, url=receiver.url + "?other", event_types=["*"])
    endpoint = f"/api/v1/webhooks/{created['id']}"

    ping = await admin.post(f"{endpoint}/test")
    assert ping.status_code == 202
    delivery_id = ping.json()["delivery_id"]
    assert [d.event_type for d in await deliveries(sessionmaker, other["id"])] == [
        "webhook.created"  # the other endpoint heard of the first one's creation, not its ping
    ]
    listed = (await admin.get(f"{endpoint}/deliveries", params={"status": "pending"})).json()
    assert delivery_id in [d["id"] for d in listed["items"]]

    dispatcher = dispatcher_for(sessionmaker)
    async with sessionmaker() as session, session.begin():  # give up on it quickly
        await session.execute(
            text("UPDATE webhook_deliveries SET attempts = 7 WHERE id = :id"), {"id": delivery_id}
        )
    await dispatcher.drain()
    failed = (await admin.get(f"{endpoint}/deliveries", params={"status": "failed"})).json()
    [item] = [d for d in failed["items"] if d["id"] == delivery_id]
    assert (item["status"], item["attempts"], item["last_status_code"]) == ("failed", 8, 500)
    assert item["event_type"] == "webhook.test"

    queued = await admin.post(f"{endpoint}/deliveries/{delivery_id}/retry")
    assert queued.status_code == 202
    assert queued.json()["status"] == "pending"
    again = await admin.post(f"{endpoint}/deliveries/{delivery_id}/retry")
    assert again.status_code == 409
    assert again.json()["code"] == "delivery_not_failed"
    receiver.script = []
    await dispatcher.drain()
    done = (await admin.get(f"{endpoint}/deliveries", params={"status": "succeeded"})).json()
    assert delivery_id in [d["id"] for d in done["items"]]
    pings = [r for r in receiver.received if r.event["type"] == "webhook.test"]
    assert {r.path for r in pings} == {"/hook"}
    Webhook(created["secret"]).verify(pings[-1].body, pings[-1].headers)
    attempts = await admin.get(f"{endpoint}/deliveries/{delivery_id}/attempts")
    assert [a["status_code"] for a in attempts.json()] == [200, 500]


async def test_deactivating_an_endpoint_fails_its_pending_deliveries(
    admin: Any, sessionmaker: Sessionmaker
) -> None:
    created = await _create(admin, event_types=["*"])
    endpoint = f"/api/v1/webhooks/{created['id']}"
    await admin.post(f"{endpoint}/test")
    response = await admin.patch(endpoint, json={"is_active": False})
    assert response.status_code == 200
    assert {d.status for d in await deliveries(sessionmaker, created["id"])} == {"failed"}


async def test_responses_that_carry_a_secret_are_not_cached(admin: Any) -> None:
    response = await admin.post("/api/v1/webhooks", json={"url": URL, "event_types": ["*"]})
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    rotated = await admin.post(f"/api/v1/webhooks/{response.json()['id']}/rotate-secret")
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"


async def test_sending_costs_needs_costs_read(
    client_as: Any, admin: Any, session: AsyncSession
) -> None:
    from tests.factories.auth import make_role

    hook_admin = await client_as(await make_role(session, ["webhooks:manage"]))
    refused = await hook_admin.post(
        "/api/v1/webhooks", json={"url": URL, "event_types": ["*"], "include_costs": True}
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert (await admin.get("/api/v1/webhooks")).json()["total"] == 0

    plain = await hook_admin.post("/api/v1/webhooks", json={"url": URL, "event_types": ["*"]})
    assert plain.status_code == 201
    own = f"/api/v1/webhooks/{plain.json()['id']}"
    assert (await hook_admin.patch(own, json={"include_costs": True})).status_code == 403
    assert (await hook_admin.patch(own, json={"url": URL + "&x=1"})).status_code == 200

    # An endpoint that includes costs (set up by someone who may see them) cannot be pointed
    # elsewhere by a caller who may not; its other fields can be changed.
    with_costs = await _create(admin, include_costs=True)
    theirs = f"/api/v1/webhooks/{with_costs['id']}"
    moved = await hook_admin.patch(theirs, json={"url": "https://elsewhere.example/"})
    assert moved.status_code == 403
    assert (await admin.get(theirs)).json()["url"] == URL
    assert (await hook_admin.patch(theirs, json={"description": "ok"})).status_code == 200
    stop = await hook_admin.patch(
        theirs, json={"include_costs": False, "url": "https://x.example/"}
    )
    assert stop.status_code == 200
    assert (stop.json()["include_costs"], stop.json()["url"]) == (False, "https://x.example/")


@pytest.mark.parametrize(
    "url",
    [
        "http://a..b/hook",
        "http://" + "a" * 64 + ".example/hook",
        "http://xn--zz.example/hook",
        "http://exa mple.example/hook",
        "http://93.184.216.34:99999/hook",
        "http://93.184.216.34:0/hook",
        "http://" + "a." * 130 + "example/",
        "http://[::1/hook",
        "http://%00.example/",
    ],
)
async def test_malformed_hosts_are_422_not_500(client_as: Any, app: Any, url: str) -> None:
    from tests.webhooks.conftest import FakeResolver

    resolver = FakeResolver()  # fails the test if asked: these never reach name resolution
    app.state.webhook_guard = TargetGuard(resolver=resolver)
    admin = await client_as("admin")
    created = await admin.post("/api/v1/webhooks", json={"url": url, "event_types": ["*"]})
    assert created.status_code == 422, created.text
    assert created.json()["code"] == "webhook_target_forbidden"
    app.state.webhook_guard = TargetGuard(resolver=_resolve_anything, allow_private=True)
    existing = await _create(admin)
    app.state.webhook_guard = TargetGuard(resolver=resolver)
    changed = await admin.patch(f"/api/v1/webhooks/{existing['id']}", json={"url": url})
    assert changed.status_code == 422, changed.text
    assert resolver.asked == []
