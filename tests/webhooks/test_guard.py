"""The forgery guard: private targets are refused at creation (422) and at every attempt, and
no connection is ever opened to them (the network layer here fails the test if asked to)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from stockroom.webhooks.guard import TargetGuard, TargetRefused, address_refusal
from tests.webhooks.conftest import (
    FakeResolver,
    NoConnections,
    Sessionmaker,
    deliveries,
    make_endpoint,
    record_events,
)

REFUSED_URLS = [
    "http://127.0.0.1/hook",
    "http://[::1]/hook",
    "http://10.0.0.1/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://loopback.example/hook",  # a name that resolves to 127.0.0.1
    "http://mixed.example/hook",  # one public and one private answer
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://[fd00:ec2::254]/hook",
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",
    "http://100.64.0.1/hook",
    "http://[64:ff9b::7f00:1]/hook",
]
RESOLVER = {
    "loopback.example": ["127.0.0.1"],
    "mixed.example": ["93.184.216.34", "10.1.2.3"],
    "2130706433": ["127.0.0.1"],
    "public.example": ["93.184.216.34"],
}


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254",
     "::ffff:127.0.0.1", "::ffff:10.0.0.1", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
     "fe80::1", "fc00::1", "100.64.0.1", "2002:7f00:1::", "64:ff9b::a00:1", "::127.0.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_creating_an_endpoint_for_a_private_target_is_422(
    client_as: Any, app: Any, url: str
) -> None:
    resolver = FakeResolver(RESOLVER)
    app.state.webhook_guard = TargetGuard(resolver=resolver)
    admin = await client_as("admin")
    response = await admin.post("/api/v1/webhooks", json={"url": url, "event_types": ["*"]})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "webhook_target_forbidden"
    assert response.json()["errors"][0]["loc"] == ["body", "url"]
    assert (await admin.get("/api/v1/webhooks")).json()["total"] == 0


async def test_a_public_target_is_accepted(client_as: Any, app: Any) -> None:
    app.state.webhook_guard = TargetGuard(resolver=FakeResolver(RESOLVER))
    admin = await client_as("admin")
    response = await admin.post(
        "/api/v1/webhooks", json={"url": "https://public.example/hook", "event_types": ["*"]}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_a_private_target_is_refused_at_delivery_without_a_connection(
    sessionmaker: Sessionmaker, dispatcher_for: Any, url: str
) -> None:
    # As if the endpoint were created while private targets were allowed, or its name's DNS
    # record changed since.
    endpoint = await make_endpoint(sessionmaker, url)
    await record_events(sessionmaker, "product.created")
    network = NoConnections()
    guard = TargetGuard(resolver=FakeResolver(RESOLVER))
    assert await dispatcher_for(sessionmaker, guard=guard, network=network).run_once() == 1
    [delivery] = await deliveries(sessionmaker, endpoint.id)
    assert delivery.status == "pending"  # retried: the DNS answer may change back
    assert delivery.last_error.startswith("target refused")
    assert network.connects == []


async def test_a_redirect_to_loopback_is_not_followed(
    sessionmaker: Sessionmaker, dispatcher_for: Any
) -> None:
    network = NoConnections(
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1/admin\r\nContent-Length: 0\r\n\r\n"
    )
    endpoint = await make_endpoint(sessionmaker, "http://public.example/hook")
    await record_events(sessionmaker, "product.created")
    guard = TargetGuard(resolver=FakeResolver(RESOLVER))
    await dispatcher_for(sessionmaker, guard=guard, network=network).run_once()
    assert network.connects == [("93.184.216.34", 80)]  # the checked address, nothing else
    [delivery] = await deliveries(sessionmaker, endpoint.id)
    assert (delivery.status, delivery.last_status_code) == ("pending", 302)


async def test_the_name_is_resolved_once_and_connected_to_as_checked(
    sessionmaker: Sessionmaker, dispatcher_for: Any
) -> None:
    network = NoConnections(b"HTTP/1.1 204 No Content\r\n\r\n")
    resolver = FakeResolver(RESOLVER)
    await make_endpoint(sessionmaker, "http://public.example:8080/hook")
    await record_events(sessionmaker, "product.created")
    guard = TargetGuard(resolver=resolver)
    await dispatcher_for(sessionmaker, guard=guard, network=network).run_once()
    assert resolver.asked == ["public.example"]
    assert network.connects == [("93.184.216.34", 8080)]


async def test_production_requires_https() -> None:
    guard = TargetGuard(resolver=FakeResolver(RESOLVER), require_https=True)
    with pytest.raises(TargetRefused, match="https"):
        await guard.check_url("http://public.example/hook")
    await guard.check_url("https://public.example/hook")


@pytest.mark.parametrize("url", ["ftp://public.example/", "https://user:pw@public.example/",
                                 "not a url", "file:///etc/passwd"])  # fmt: skip
async def test_other_schemes_and_credentials_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        await TargetGuard(resolver=FakeResolver(RESOLVER)).check_url(url)


async def test_allowing_private_targets_lets_loopback_through() -> None:
    await TargetGuard(resolver=FakeResolver(RESOLVER), allow_private=True).check_url(
        "http://loopback.example/hook"
    )
