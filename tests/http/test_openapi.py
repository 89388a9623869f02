"""The OpenAPI document says what the API does: methods, parameters, statuses and links."""

from __future__ import annotations

import re
import uuid
from typing import Any

import email_validator
import httpx
import pytest

from stockroom.types import PUBLIC_DOMAIN_PATTERN, SPECIAL_USE_DOMAINS
from tests.conftest import ClientAs
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


def _parameter(operation: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((p for p in operation.get("parameters", []) if p["name"] == name), None)


async def test_every_sort_is_an_enum_whose_every_value_the_list_accepts(
    client_as: ClientAs, openapi: dict[str, Any]
) -> None:
    admin = await client_as("admin")
    sorted_lists = 0
    for method, path, operation in operations(openapi):
        sort = _parameter(operation, "sort")
        if sort is None:
            continue
        sorted_lists += 1
        values = sort["schema"]["enum"]
        fields = [v for v in values if not v.startswith("-")]
        assert values == [*fields, *(f"-{f}" for f in fields)], path
        assert sort["schema"]["default"] in values, path
        assert sort["schema"]["type"] == "string", path
        for value in values:
            response = await admin.request(method, path, params={"sort": value})
            assert response.status_code == 200, (path, value, response.text)
        refused = await admin.request(method, path, params={"sort": "_"})
        assert_problem(refused, 422, "validation_error")
    # users, roles, categories, suppliers, warehouses, products (list and export), purchase
    # and sales orders.
    assert sorted_lists >= 9


async def test_every_operation_taking_if_match_documents_412(openapi: dict[str, Any]) -> None:
    taking = 0
    for method, path, operation in operations(openapi):
        if_match = _parameter(operation, "If-Match")
        if if_match is None:
            continue
        taking += 1
        assert "412" in operation["responses"], (method, path)
        assert "pattern" in if_match["schema"], (method, path)
    assert taking >= 10


async def test_operation_ids_are_the_handlers_names(openapi: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(openapi)]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", operation_id), operation_id
        assert "api_v1" not in operation_id, operation_id
    assert {"list_products", "create_product", "post_stock_movement"} <= set(ids)


async def test_component_names_are_type_names(openapi: dict[str, Any]) -> None:
    names = set(openapi["components"]["schemas"])
    assert {"ProductReadPage", "WarehouseReadPage", "Problem", "ValidationProblem"} <= names
    assert not [n for n in names if n.endswith("_")], names  # Pydantic's `Page_ProductRead_`
    assert not {"HTTPValidationError", "ValidationError"} & names  # bodies nobody answers


async def test_every_error_response_is_a_documented_problem(openapi: dict[str, Any]) -> None:
    for method, path, operation in operations(openapi):
        for status, response in operation["responses"].items():
            if int(status) < 400 or (path, status) == ("/api/v1/health/ready", "503"):
                continue  # readiness answers 503 with its own body, for probes
            content = response["content"]
            assert list(content) == ["application/problem+json"], (method, path, status)
            schema = content["application/problem+json"]["schema"]["$ref"]
            expected = "ValidationProblem" if status == "422" else "Problem"
            assert schema == f"#/components/schemas/{expected}", (method, path, status)
            assert content["application/problem+json"]["example"]["status"] == int(status)


async def test_links_lead_from_each_create_to_the_operations_on_its_id(
    openapi: dict[str, Any],
) -> None:
    by_id = {operation["operationId"]: operation for _, _, operation in operations(openapi)}
    creates = 0
    for method, path, operation in operations(openapi):
        created = operation["responses"].get("201")
        has_items = any(other.startswith(path + "/{") for other in openapi["paths"])
        if method != "post" or created is None or "{" in path or not has_items:
            continue  # `/auth/register` creates a user that only an admin can address
        creates += 1
        links = created.get("links")
        assert links, path
        for link in links.values():
            target = by_id[link["operationId"]]
            for where in link.get("parameters", {}):
                location, name = where.split(".", 1)
                assert _parameter(target, name) is not None, (path, link)
                assert location in {"path", "query"}
            assert link.get("parameters") or link.get("requestBody"), (path, link)
    assert creates >= 12
    product_links = openapi["paths"]["/api/v1/products"]["post"]["responses"]["201"]["links"]
    # The stateful phase reaches stock actions from a created product.
    assert "get_product" in product_links
    assert "post_stock_movement.product_id" in product_links
    assert "create_stock_transfer.product_id" in product_links
    transfer_links = openapi["paths"]["/api/v1/stock-transfers"]["post"]["responses"]["201"]
    assert {"complete_stock_transfer", "cancel_stock_transfer"} <= set(transfer_links["links"])


async def test_the_stateful_phase_reaches_every_operation_on_a_path_id(
    openapi: dict[str, Any],
) -> None:
    """Schemathesis's stateful phase calls an operation on an id only by following a link from
    a response that carried the id: one that no link targets, with every path parameter bound,
    is never called with a real id (only a guessed one, which is a 404)."""
    by_id = {
        operation["operationId"]: (path, operation) for _, path, operation in operations(openapi)
    }
    bound: dict[str, set[str]] = {}  # operationId -> path parameters some link binds, in one link
    for _, _, operation in operations(openapi):
        for response in operation["responses"].values():
            for link in response.get("links", {}).values():
                names = {
                    where.split(".", 1)[1]
                    for where in link.get("parameters", {})
                    if where.startswith("path.")
                }
                target_path, _ = by_id[link["operationId"]]
                wanted = set(re.findall(r"\{([^}]+)\}", target_path))
                if wanted <= names:
                    bound.setdefault(link["operationId"], set()).update(names)
    unreachable = sorted(
        f"{method.upper()} {path}"
        for method, path, operation in operations(openapi)
        if "{" in path and operation["operationId"] not in bound
    )
    assert not unreachable, f"no link binds every path id of: {unreachable}"


def test_email_pattern_names_what_is_refused() -> None:
    """The document's email pattern refuses exactly the special-use domains the server refuses
    (email-validator's list), so that a generated client or form validates as the server does."""
    assert set(SPECIAL_USE_DOMAINS) == set(email_validator.SPECIAL_USE_DOMAIN_NAMES)
    for name in SPECIAL_USE_DOMAINS:
        for address in (f"a@{name}", f"a@shop.{name.upper()}"):
            assert re.search(PUBLIC_DOMAIN_PATTERN, address) is None, address
            with pytest.raises(email_validator.EmailNotValidError):
                email_validator.validate_email(address, check_deliverability=False)
    for address in ("a@example.com", f"a@{SPECIAL_USE_DOMAINS[0]}x.com", "a@test.example.org"):
        assert re.search(PUBLIC_DOMAIN_PATTERN, address), address


async def test_every_operation_documents_the_refusals_a_client_switches_on(
    openapi: dict[str, Any],
) -> None:
    """A generated client gets a typed branch for each documented status: 404 wherever a path id
    is taken, 403 wherever a permission is needed, 401 wherever a token is. Only the caller's own
    session and profile need no permission (any signed-in user may use them)."""
    missing = []
    self_service = set()
    for method, path, operation in operations(openapi):
        statuses = set(operation["responses"])
        if "{" in path and "404" not in statuses:
            missing.append(f"404 {method.upper()} {path}")
        if operation.get("security"):
            if "401" not in statuses:
                missing.append(f"401 {method.upper()} {path}")
            if "403" not in statuses:
                self_service.add(f"{method.upper()} {path}")
    assert not missing, missing
    assert self_service == {
        "POST /api/v1/auth/logout",
        "GET /api/v1/users/me",
        "POST /api/v1/users/me/password",
    }
