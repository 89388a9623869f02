"""`GET /users/me` and `GET /products/{id}` are served by fast paths (`auth.fastpath`,
`catalog.fastpath`) in front of FastAPI's router: they must answer as their routes do, and
leave to the routes everything they refuse. A query string makes a request the route's (the
fast paths take none), which is how these tests ask the route for its own answer."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth.models import User
from tests.conftest import ClientAs
from tests.factories.catalog import make_product, make_warehouse
from tests.factories.stock import make_stock

ROUTE = "?via=route"


def same_answer(fast: httpx.Response, routed: httpx.Response) -> None:
    assert fast.status_code == routed.status_code
    assert fast.json() == routed.json()
    assert fast.content == routed.content  # serialized alike, byte for byte
    for header in ("content-type", "etag"):
        assert fast.headers.get(header) == routed.headers.get(header), header


@pytest.mark.parametrize("role", ["staff", "manager"])  # without and with costs:read
async def test_a_product_is_answered_alike_by_the_fast_path_and_the_route(
    client_as: ClientAs, session: AsyncSession, role: str
) -> None:
    product = await make_product(session, cost_price=Decimal("2.50"), name="Zoë's hinge")
    await make_stock(session, product, await make_warehouse(session), 7)
    caller = await client_as(role)
    path = f"/api/v1/products/{product.id}"

    fast, routed = await caller.get(path), await caller.get(path + ROUTE)

    assert fast.status_code == 200, fast.text
    same_answer(fast, routed)
    assert fast.json()["on_hand"] == 7
    assert ("cost_price" in fast.json()) == (role == "manager")
    # The same id spelled without dashes, as the route's uuid convertor accepts it.
    same_answer(await caller.get(f"/api/v1/products/{product.id.hex}"), routed)


async def test_what_the_product_fast_path_declines_the_route_refuses(
    client_as: ClientAs, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    product = await make_product(session)
    staff = await client_as("staff")
    nobody = await client_as()  # no role: no catalog:read

    assert (await staff.get(f"/api/v1/products/{uuid.uuid4()}")).json()["code"] == "not_found"
    assert (await nobody.get(f"/api/v1/products/{product.id}")).status_code == 403
    assert (await client.get(f"/api/v1/products/{product.id}")).status_code == 401
    assert (await staff.get("/api/v1/products/low-stock")).status_code == 200  # not an id


async def test_me_is_answered_alike_and_refused_on_the_next_request_after_deactivation(
    client_as: ClientAs, session: AsyncSession
) -> None:
    caller = await client_as("staff")

    fast, routed = (
        await caller.get("/api/v1/users/me"),
        await caller.get("/api/v1/users/me" + ROUTE),
    )
    assert fast.status_code == 200, fast.text
    same_answer(fast, routed)

    await session.execute(update(User).where(User.id == caller.user.id).values(is_active=False))  # type: ignore[attr-defined]
    refused = await caller.get("/api/v1/users/me")
    assert refused.status_code == 401
    assert refused.json()["code"] == "not_authenticated"
