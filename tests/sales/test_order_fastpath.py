"""`POST /sales-orders/{id}/confirm` and `/ship` are served by fast paths (`sales.fastpath`) in
front of FastAPI's router. They must answer as their routes do (a query string sends a request
to the route: the fast paths take none), byte for byte, and cost two round trips: the principal
and the action's SQL function."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.sales import service
from tests.conftest import ClientAs
from tests.sales.test_sales_orders import URL, World, confirmed, create, shipment
from tests.stock.live import live_app
from tests.support.wire import round_trip_counter

ROUTE = "?via=route"


@pytest.fixture
async def world(session: AsyncSession) -> World:
    return await World(session).build()


def alike(fast: httpx.Response, routed: httpx.Response) -> None:
    """Status, content type, the headers that matter and the body (but for the request id of a
    problem document, which is each request's own)."""
    assert fast.status_code == routed.status_code, (fast.text, routed.text)
    for header in ("content-type", "etag", "idempotent-replayed"):
        assert fast.headers.get(header) == routed.headers.get(header), header
    if fast.status_code < 400:
        assert fast.content == routed.content
    else:
        a, b = fast.json(), routed.json()
        a.pop("request_id"), b.pop("request_id")
        assert a == b


async def test_the_fast_paths_serve_without_the_routes(
    client_as: ClientAs, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def route_use_case(*_: Any, **__: Any) -> Any:
        raise AssertionError("the route's use case ran")

    monkeypatch.setattr(service, "confirm_order", route_use_case)
    monkeypatch.setattr(service, "ship_order", route_use_case)
    staff = await client_as("staff")
    order = await create(staff, world)

    confirm = await staff.post(f"{URL}/{order['id']}/confirm")
    ship = await staff.post(f"{URL}/{order['id']}/ship", json=shipment(order, 1))
    routed = await staff.post(f"{URL}/{order['id']}/ship{ROUTE}", json=shipment(order, 1))

    assert confirm.status_code == ship.status_code == 200, (confirm.text, ship.text)
    assert routed.status_code == 500  # proof that this one went to the route
    # The same bytes as the order read back through the model.
    assert ship.content == (await staff.get(f"{URL}/{order['id']}")).content


async def test_success_is_the_same_bytes_on_both_paths(client_as: ClientAs, world: World) -> None:
    staff = await client_as("staff")
    fast_order, routed_order = await create(staff, world, 2, 1), await create(staff, world, 2, 1)
    for action, body in (("confirm", None), ("ship", (1, 1)), ("ship", (1,))):
        answers = []
        for order, suffix in ((fast_order, ""), (routed_order, ROUTE)):
            path = f"{URL}/{order['id']}"
            json_body = shipment(order, *body) if body else None
            answer = await staff.post(f"{path}/{action}{suffix}", json=json_body)
            assert answer.status_code == 200, answer.text
            assert answer.content == (await staff.get(path)).content
            answers.append(answer)
        fast, routed = answers
        assert fast.headers["etag"] == routed.headers["etag"]
        assert fast.headers["content-type"] == routed.headers["content-type"]
        same = {k: v for k, v in fast.json().items() if k in {"status", "total_price"}}
        assert same == {k: routed.json()[k] for k in same}
    assert fast.json()["status"] == "shipped"


async def test_each_refusal_is_the_same_on_both_paths(
    client_as: ClientAs, world: World, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    draft = await create(staff, world, 11, 1)  # a is short
    order = await confirmed(staff, world, 2, 1)
    missing = f"{URL}/{uuid.uuid4()}"
    foreign = {"lines": [*shipment(order, 1)["lines"], *shipment(draft, 1)["lines"]]}
    cases: list[tuple[str, dict[str, Any] | None, int]] = [
        (f"{missing}/confirm", None, 404),
        (f"{missing}/ship", shipment(order, 1), 404),
        (f"{URL}/{order['id']}/confirm", None, 409),  # invalid_transition
        (f"{URL}/{draft['id']}/ship", shipment(draft, 1), 409),  # invalid_transition
        (f"{URL}/{draft['id']}/confirm", None, 409),  # insufficient_available
        (f"{URL}/{order['id']}/ship", shipment(order, 3, 2), 409),  # over_shipment
        (f"{URL}/{order['id']}/ship", foreign, 422),  # not a line of this order
    ]
    for path, body, status in cases:
        fast = await staff.post(path, json=body)
        routed = await staff.post(path + ROUTE, json=body)
        assert fast.status_code == status, (path, fast.text)
        alike(fast, routed)
    assert await world.level(world.a) == {"on_hand": 10, "reserved": 2, "on_order": 0}


async def test_a_key_replays_alike_on_either_path(client_as: ClientAs, world: World) -> None:
    staff = await client_as("staff")
    for first, retry in (("", ROUTE), (ROUTE, "")):
        order = await create(staff, world, 1, 1)
        path = f"{URL}/{order['id']}"
        for action, body in (("confirm", None), ("ship", shipment(order, 1))):
            key = {"Idempotency-Key": uuid.uuid4().hex}
            original = await staff.post(f"{path}/{action}{first}", json=body, headers=key)
            replays = [
                await staff.post(f"{path}/{action}{suffix}", json=body, headers=key)
                for suffix in (first, retry)
            ]
            assert original.status_code == 200, original.text
            alike(*replays)
            assert replays[0].headers["idempotent-replayed"] == "true"
            assert replays[0].json() == original.json()
            assert replays[0].headers["etag"] == original.headers["etag"]
        reused = [
            await staff.post(f"{path}/confirm{suffix}", headers={"Idempotency-Key": "r" + first})
            for suffix in ("", ROUTE)
        ]
        # 409 invalid_transition, stored for the key by the first, replayed by the other.
        assert [r.status_code for r in reused] == [409, 409]
        assert reused[0].json() == reused[1].json()
        assert reused[1].headers["idempotent-replayed"] == "true"
    assert await world.level(world.a) == {"on_hand": 8, "reserved": 0, "on_order": 0}


async def test_what_the_fast_paths_decline_the_routes_refuse(
    client_as: ClientAs, world: World, client: httpx.AsyncClient
) -> None:
    staff = await client_as("staff")
    reader = await client_as("analyst")
    order = await create(staff, world)
    path = f"{URL}/{order['id']}"

    assert (await reader.post(f"{path}/confirm")).status_code == 403
    assert (await client.post(f"{path}/confirm")).status_code == 401
    assert (await staff.post(f"{URL}/not-an-id/confirm")).status_code == 422
    long_key = {"Idempotency-Key": "k" * 256}
    assert (await staff.post(f"{path}/confirm", headers=long_key)).status_code == 422
    assert (await staff.post(f"{path}/ship", json={"lines": []})).status_code == 422
    # The id without dashes: the route's convertor takes it.
    confirmed_ = await staff.post(f"{URL}/{uuid.UUID(order['id']).hex}/confirm")
    assert confirmed_.status_code == 200, confirmed_.text
    broken = await staff.post(
        f"{path}/ship", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422


async def test_round_trips_of_confirm_and_ship(fresh_database: str) -> None:
    async with round_trip_counter(fresh_database) as counter:
        async with live_app(
            counter.url_for(fresh_database), database_pool_size=1, database_max_overflow=0
        ) as live:
            product, (warehouse,) = await live.product_in(100)
            client = await live.client("staff")
            drafts = []
            for _ in range(8):
                response = await client.post(
                    URL,
                    json={
                        "warehouse_id": str(warehouse.id),
                        "customer": {"name": "Round trips"},
                        "lines": [{"product_id": str(product.id), "quantity": 1}],
                    },
                )
                assert response.status_code == 201, response.text
                drafts.append(response.json())
            counts = {}
            for action in ("confirm", "ship"):
                for i, order in enumerate(drafts):
                    if i == 3:  # after a warm-up: the connection's statements are prepared
                        counter.reset()
                    body = shipment(order, 1) if action == "ship" else None
                    response = await client.post(f"{URL}/{order['id']}/{action}", json=body)
                    assert response.status_code == 200, response.text
                counts[action] = counter.round_trips / (len(drafts) - 3)
            await client.aclose()
            # The principal, then the action's function as a statement of its own.
            assert counts == {"confirm": 2, "ship": 2}
            on_hand = await live.scalar(
                "SELECT on_hand FROM stock_levels WHERE product_id = :p", p=product.id
            )
            assert on_hand == 100 - 8
