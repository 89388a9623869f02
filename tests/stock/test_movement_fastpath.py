"""`POST /stock-movements` is served by a fast path (`stockroom.stock.fastpath`) in front of
FastAPI's router. It must answer exactly as its route does; the route still answers every
request the fast path declines: here, one whose Content-Type carries a charset parameter, which
the fast path leaves to the route."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.stock import service
from tests.conftest import ClientAs
from tests.factories.auth import make_role
from tests.factories.catalog import make_product, make_warehouse
from tests.factories.stock import make_stock
from tests.stock.test_movements import URL, assert_problem, movement, on_hand

VIA_ROUTE = {"Content-Type": "application/json; charset=utf-8"}
# Differ between any two postings, by design.
UNIQUE = {"id", "created_at", "on_hand_after", "request_id"}


def shape(response: httpx.Response) -> tuple[Any, ...]:
    """What two answers to the same request share: status, content type, header names, the
    Location's collection, and the body but for what is unique to each posting."""
    body = response.json()
    headers = {k for k in response.headers if k not in {"x-request-id", "content-length"}}
    location = response.headers.get("location", "").rsplit("/", 1)[0]
    if "location" in response.headers:
        assert response.headers["location"].endswith(f"/{body['id']}")
    common = {k: v for k, v in body.items() if k not in UNIQUE}
    return response.status_code, response.headers["content-type"], headers, location, common


async def test_the_fast_path_serves_a_movement_without_the_route(
    client_as: ClientAs, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def route_use_case(*_: Any, **__: Any) -> Any:
        raise AssertionError("the route's use case ran")

    monkeypatch.setattr(service, "post_movement_idempotent", route_use_case)
    product, warehouse = await make_product(session), await make_warehouse(session)
    staff = await client_as("staff")

    fast = await staff.post(URL, json=movement(product, warehouse, "receipt", 2))
    via_route = await staff.post(
        URL, json=movement(product, warehouse, "receipt", 2), headers=VIA_ROUTE
    )

    assert fast.status_code == 201, fast.text
    assert via_route.status_code == 500  # proof that this one went to the route
    assert await on_hand(session, product.id, warehouse.id) == 2


@pytest.mark.parametrize("role", ["staff", "manager"])  # without and with costs:read
async def test_fast_path_and_route_answer_alike(
    client_as: ClientAs, session: AsyncSession, role: str
) -> None:
    product = await make_product(session, cost_price=Decimal("4.00"), sale_price=Decimal("9.50"))
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    caller = await client_as(role)
    for body in (
        movement(product, warehouse, "receipt", 3, reference="PO-1", note="dock 2"),
        movement(product, warehouse, "sale", 1),
        movement(product, warehouse, "return", 1, unit_price="8.00"),
    ):
        fast = await caller.post(URL, json=body)
        routed = await caller.post(URL, json=body, headers=VIA_ROUTE)
        assert shape(fast) == shape(routed), (fast.text, routed.text)
        assert fast.status_code == 201
        assert ("unit_cost" in fast.json()) == (role == "manager")
    assert await on_hand(session, product.id, warehouse.id) == 10 + 2 * (3 - 1 + 1)


async def test_a_key_used_on_one_path_replays_the_same_body_on_the_other(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product, warehouse = await make_product(session), await make_warehouse(session)
    staff = await client_as("staff")
    body = movement(product, warehouse, "receipt", 4)
    for first, retry in ((None, VIA_ROUTE), (VIA_ROUTE, None)):
        key = {"Idempotency-Key": uuid.uuid4().hex}
        original = await staff.post(URL, json=body, headers={**key, **(first or {})})
        replay = await staff.post(URL, json=body, headers={**key, **(retry or {})})
        assert original.status_code == replay.status_code == 201, replay.text
        assert replay.headers["idempotent-replayed"] == "true"
        # The stored body (jsonb: its key order is PostgreSQL's), as on the route alone.
        assert replay.json() == original.json()
        assert replay.headers["location"] == original.headers["location"]
    assert await on_hand(session, product.id, warehouse.id) == 8


async def test_a_refused_keyed_posting_on_the_fast_path_is_stored_for_its_retries(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product, warehouse = await make_product(session), await make_warehouse(session)
    staff = await client_as("staff")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = movement(product, warehouse, "sale", 1)

    refused = await staff.post(URL, json=body, headers=key)
    await make_stock(session, product, warehouse, 5)
    retried = await staff.post(URL, json=body, headers=key)

    assert_problem(refused, 409, "insufficient_stock")
    assert_problem(retried, 409, "insufficient_stock")
    assert retried.headers["idempotent-replayed"] == "true"
    assert await on_hand(session, product.id, warehouse.id) == 5


async def test_what_the_fast_path_declines_the_route_refuses(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product, warehouse = await make_product(session), await make_warehouse(session)
    staff = await client_as("staff")  # no stock:adjust, no costs:read
    no_costs = await client_as(await make_role(session, ["stock:write", "stock:adjust"]))

    assert_problem(
        await staff.post(URL, json=movement(product, warehouse, "adjustment", 2)),
        403,
        "permission_denied",
    )
    assert_problem(
        await no_costs.post(URL, json=movement(product, warehouse, "receipt", 2, unit_cost="1")),
        403,
        "permission_denied",
    )
    assert_problem(
        await staff.post(
            URL,
            json=movement(product, warehouse, "receipt", 2),
            headers={"Authorization": "Bearer not-a-token"},
        ),
        401,
        "not_authenticated",
    )
    assert_problem(
        await staff.post(URL, json=movement(product, warehouse, "receipt", 0)),
        422,
        "validation_error",
    )
    assert_problem(
        await staff.post(
            URL,
            json=movement(product, warehouse, "receipt", 2),
            headers={"Idempotency-Key": "k" * 256},
        ),
        422,
        "validation_error",
    )
    assert_problem(
        await staff.post(
            URL, content=b'{"product_id": ', headers={"Content-Type": "application/json"}
        ),
        422,
        "validation_error",
    )
    # Not a fast path request at all (a query string): the route serves it, and it posts.
    routed = await staff.post(URL + "?via=route", json=movement(product, warehouse, "receipt", 2))
    assert routed.status_code == 201, routed.text
    assert await on_hand(session, product.id, warehouse.id) == 2
