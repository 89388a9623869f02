from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, Query
from pydantic import BaseModel, Field

from stockroom.http.errors import Conflict
from stockroom.http.pagination import Pagination, Sort, sort_param
from tests.conftest import http_client

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


class Widget(BaseModel):
    name: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    password: str | None = None


@pytest.fixture
async def test_client(private_app: Any) -> httpx.AsyncClient:
    app = private_app

    @app.post("/_test/widgets")
    async def create_widget(widget: Widget) -> Widget:
        return widget

    @app.get("/_test/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail: SELECT * FROM users")

    @app.get("/_test/conflict")
    async def conflict() -> None:
        raise Conflict("that sku is taken")

    @app.get("/_test/list")
    async def listing(
        page: Pagination,
        sort: Annotated[Sort, Depends(sort_param(["name", "created_at"], "name"))],
        q: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        return {
            "page": page.page,
            "size": page.page_size,
            "sort": sort.field,
            "desc": sort.descending,
        }

    return http_client(app)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert PROBLEM_KEYS <= body.keys()
    assert body["status"] == status
    assert body["code"] == code
    return body


async def test_unknown_path_is_a_404_problem(test_client: httpx.AsyncClient) -> None:
    assert_problem(await test_client.get("/api/v1/nope"), 404, "not_found")


async def test_wrong_method_is_a_405_problem(test_client: httpx.AsyncClient) -> None:
    response = await test_client.delete("/api/v1/health/live")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_invalid_body_is_a_422_problem_that_never_echoes_input(
    test_client: httpx.AsyncClient,
) -> None:
    response = await test_client.post(
        "/_test/widgets", json={"name": "", "quantity": 0, "password": 5}
    )
    body = assert_problem(response, 422, "validation_error")
    locations = {tuple(error["loc"]) for error in body["errors"]}
    assert ("body", "name") in locations
    assert ("body", "quantity") in locations
    assert all(set(error) == {"loc", "msg", "type"} for error in body["errors"])


async def test_malformed_json_is_a_422_problem(test_client: httpx.AsyncClient) -> None:
    response = await test_client.post(
        "/_test/widgets", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "validation_error")


async def test_oversized_body_is_a_413_problem(test_client: httpx.AsyncClient) -> None:
    response = await test_client.post(
        "/_test/widgets",
        content=b'{"name": "' + b"x" * 2_000_000 + b'", "quantity": 1}',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_oversized_chunked_body_is_a_413_problem(test_client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 65_536
        yield b'", "quantity": 1}'

    response = await test_client.post(
        "/_test/widgets", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_unhandled_exception_is_a_500_that_leaks_nothing(
    test_client: httpx.AsyncClient,
) -> None:
    response = await test_client.get("/_test/boom", headers={"X-Request-ID": "trace-me-123"})
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "trace-me-123"
    text = response.text
    assert "SELECT" not in text
    assert "RuntimeError" not in text
    assert "Traceback" not in text


async def test_domain_errors_render_as_problems(test_client: httpx.AsyncClient) -> None:
    body = assert_problem(await test_client.get("/_test/conflict"), 409, "conflict")
    assert body["detail"] == "that sku is taken"


async def test_page_size_over_100_is_422(test_client: httpx.AsyncClient) -> None:
    assert_problem(await test_client.get("/_test/list?page_size=101"), 422, "validation_error")
    assert_problem(await test_client.get("/_test/list?page=0"), 422, "validation_error")
    ok = await test_client.get("/_test/list?page=2&page_size=100&sort=-created_at")
    assert ok.json() == {"page": 2, "size": 100, "sort": "created_at", "desc": True}


async def test_unknown_sort_field_is_422_naming_the_allowed_fields(
    test_client: httpx.AsyncClient,
) -> None:
    body = assert_problem(
        await test_client.get("/_test/list?sort=password"), 422, "validation_error"
    )
    assert body["errors"][0]["loc"] == ["query", "sort"]
    assert "name, created_at" in body["detail"]


async def test_undecodable_body_is_a_422_problem(test_client: httpx.AsyncClient) -> None:
    response = await test_client.post(
        "/_test/widgets", content=b"/\xff\xfed", headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body"]


async def test_openapi_documents_shared_error_responses(test_client: httpx.AsyncClient) -> None:
    schema = (await test_client.get("/openapi.json")).json()
    ready = schema["paths"]["/api/v1/health/ready"]["get"]["responses"]
    assert "503" in ready
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if operation.get("requestBody"):
                assert {"413", "422"} <= operation["responses"].keys(), (method, path)
            if operation.get("security"):
                assert "401" in operation["responses"], (method, path)
