"""SQL- and NoSQL-injection attempts in filter parameters are data: they match nothing, widen
nothing, and never reach the database as code (no 500, nothing changed)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog.models import Product
from tests.conftest import ClientAs
from tests.factories.catalog import make_product, make_warehouse

SQL_ATTEMPTS = [
    "' OR '1'='1",
    "'; DROP TABLE products; --",
    "%' OR 1=1 --",
    "\\' UNION SELECT password_hash FROM users --",
    "%",
    "_",
]
NOSQL_ATTEMPTS = [
    '{"$ne": null}',
    '{"$gt": ""}',
    "this.type == 'x' || true",
    "stock.*|.*",
    "^.*$",
    ".*",
]


@pytest.fixture
async def admin(client_as: ClientAs, session: AsyncSession) -> httpx.AsyncClient:
    await make_product(session, sku="SAFE-1", name="Hex bolt", description="zinc")
    await make_warehouse(session)
    return await client_as("admin")


def assert_refused_or_empty(response: httpx.Response) -> dict[str, Any] | list[Any] | None:
    assert response.status_code in {200, 422}, response.text
    if response.status_code == 422:
        assert response.json()["code"] in {"validation_error", "invalid_filter"}
        return None
    body: dict[str, Any] | list[Any] = response.json()
    return body


@pytest.mark.parametrize("attempt", SQL_ATTEMPTS)
async def test_sql_injection_in_catalog_filters_is_data(
    admin: httpx.AsyncClient, session: AsyncSession, attempt: str
) -> None:
    before = await session.scalar(select(func.count()).select_from(Product))
    for path, param in [
        ("/api/v1/products", "q"),
        ("/api/v1/users", "q"),
        ("/api/v1/suppliers", "q"),
        ("/api/v1/stock-movements", "reference"),
        ("/api/v1/products", "sort"),
    ]:
        body = assert_refused_or_empty(await admin.get(path, params={param: attempt}))
        if isinstance(body, dict) and param == "q" and attempt not in {"%", "_"}:
            assert body["total"] == 0, (path, attempt, body)
    export = await admin.get("/api/v1/products/export", params={"q": attempt})
    assert export.status_code == 200
    assert len(export.text.strip().splitlines()) == 1, "only the header: nothing matched"
    # `%` and `_` are literal characters, not wildcards: they match no product either.
    if attempt in {"%", "_"}:
        body = (await admin.get("/api/v1/products", params={"q": attempt})).json()
        assert body["total"] == 0
    assert await session.scalar(select(func.count()).select_from(Product)) == before


@pytest.mark.parametrize("attempt", NOSQL_ATTEMPTS)
async def test_nosql_injection_in_activity_filters_is_data(
    admin: httpx.AsyncClient, attempt: str
) -> None:
    await admin.post(
        "/api/v1/warehouses", json={"code": "INJ1", "name": "An event to find"}
    )  # at least one event exists
    for param in ("type", "entity_type"):
        body = assert_refused_or_empty(await admin.get("/api/v1/activity", params={param: attempt}))
        if isinstance(body, dict):
            assert body["items"] == [], (param, attempt)
    # Operator-looking parameter names are not parameters at all.
    response = await admin.get("/api/v1/activity", params={"type[$ne]": "x", "$where": "1"})
    assert response.status_code == 200
