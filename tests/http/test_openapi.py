"""The OpenAPI document says what the API does: methods, parameters, statuses and links."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.http.test_problems import assert_problem

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _concrete(path: str) -> str:
    # Role names are the only ids that are not UUIDs.
    return re.sub(r"\{[^}]+\}", lambda m: "admin" if m[0] == "{name}" else str(uuid.uuid4()), path)


async def test_a_405_lists_every_method_of_a_resource_with_several(
    client: httpx.AsyncClient,
) -> None:
    product = f"/api/v1/products/{uuid.uuid4()}"
    response = await client.put(product, json={})
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    options = await client.options("/api/v1/categories")
    assert_problem(options, 405, "method_not_allowed")
    assert options.headers["allow"] == "GET, POST"
    movement = await client.delete(f"/api/v1/stock-movements/{uuid.uuid4()}")
    assert movement.headers["allow"] == "GET"


async def test_every_405_lists_exactly_the_documented_methods(
    client: httpx.AsyncClient, openapi: dict[str, Any]
) -> None:
    for path, item in openapi["paths"].items():
        documented = sorted(method.upper() for method in item if method in METHODS)
        response = await client.options(_concrete(path))
        assert response.status_code == 405, path
        assert response.headers["allow"] == ", ".join(documented), path
