"""OpenAPI post-processing: what the shared machinery does for every route, documented once.

Routes document their own domain errors (404, 409, ...). What the shared machinery can answer
for any route is added here, so the schema lists every status a client may see: 401, 413, 422,
503, and 412 wherever an `If-Match` is taken. Also added here, from the paths alone:

- a query or header parameter is never `null` (it is absent or a string), so the `anyOf [X,
  null]` Pydantic writes for an optional parameter becomes X;
- links from each create (`POST /things` answering 201) to every operation that takes the new
  id: the item paths under `/things/{thing_id}`, and any other operation with a `thing_id`
  parameter or body field (`*_thing_id` too, as in `from_warehouse_id`). A client generator or a
  stateful tester follows them; a new router gets them by naming its path parameter `thing_id`;
- links from a list nothing creates into (an endpoint's deliveries) to the operations on its
  first item, so that every operation taking a path id is some link's target.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from stockroom.http.errors import PROBLEM_CONTENT_TYPE, Problem, ValidationProblem

_METHODS = {"get", "post", "put", "patch", "delete"}
ENTITY_TAGS = r'^(\*|(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*)$'


def _problem(description: str, schema: str, example: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            PROBLEM_CONTENT_TYPE: {
                "schema": {"$ref": f"#/components/schemas/{schema}"},
                "example": {"type": "about:blank", **example},
            }
        },
    }


UNAUTHORIZED = _problem(
    "Missing, invalid or expired bearer token",
    "Problem",
    {
        "title": "Unauthorized",
        "status": 401,
        "detail": "invalid or expired token",
        "code": "not_authenticated",
    },
)
VALIDATION = _problem(
    "Validation error: parameters or body do not match the schema",
    "ValidationProblem",
    {
        "title": "Unprocessable Content",
        "status": 422,
        "detail": "body.quantity: ...",
        "code": "validation_error",
        "errors": [{"loc": ["body", "quantity"], "msg": "...", "type": "greater_than"}],
    },
)
TOO_LARGE = _problem(
    "The request body is larger than the limit",
    "Problem",
    {"title": "Content Too Large", "status": 413, "detail": "...", "code": "payload_too_large"},
)
PRECONDITION_FAILED = _problem(
    "If-Match does not match the resource's current ETag: it changed since you read it",
    "Problem",
    {
        "title": "Precondition Failed",
        "status": 412,
        "detail": "the resource has changed since you read it (If-Match does not match)",
        "code": "precondition_failed",
    },
)
UNAVAILABLE = _problem(
    "The database is unavailable; retry later (Retry-After)",
    "Problem",
    {
        "title": "Service Unavailable",
        "status": 503,
        "detail": "the database is unavailable",
        "code": "database_unavailable",
    },
)


def operation_id(route: APIRoute) -> str:
    """The handler's name (`list_products`, `post_stock_movement`): what a generated client
    calls the method. FastAPI's default appends the path and method
    (`list_products_api_v1_products_get`). Handler names are unique across routers
    (tests/http/test_openapi.py checks it)."""
    return route.name


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        for model in (Problem, ValidationProblem):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in model_schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components.setdefault(model.__name__, model_schema)
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if method not in _METHODS:
                    continue
                responses = operation.setdefault("responses", {})
                for status, response in responses.items():
                    _problem_only(status, response)
                parameters = operation.get("parameters", [])
                for parameter in parameters:
                    _no_null_parameter(parameter)
                if any(p["in"] == "header" and p["name"].lower() == "if-match" for p in parameters):
                    responses.setdefault("412", PRECONDITION_FAILED)
                if parameters or operation.get("requestBody"):
                    # FastAPI's own 422 entry describes its `{"detail": [...]}` body; the
                    # handler in http/errors.py answers a ValidationProblem instead.
                    if "HTTPValidationError" in str(responses.get("422", "")):
                        del responses["422"]
                    responses.setdefault("422", VALIDATION)
                if operation.get("requestBody"):
                    responses.setdefault("413", TOO_LARGE)
                if operation.get("security"):
                    responses.setdefault("401", UNAUTHORIZED)
                if not path.endswith("/health/live"):
                    responses.setdefault("503", UNAVAILABLE)
        _name_components_by_title(schema)
        _add_create_links(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_only(status: str, response: dict[str, Any]) -> None:
    """An error documented as a problem is answered only as `application/problem+json`.

    FastAPI also lists the `model` of `responses=` under the route's own media type
    (`application/json`), which no error is ever answered with.
    """
    content = response.get("content", {})
    if status.isdigit() and int(status) >= 400 and PROBLEM_CONTENT_TYPE in content:
        content.pop("application/json", None)


def _name_components_by_title(schema: dict[str, Any]) -> None:
    """A generic model's component is named by its title (`ProductReadPage`, from
    `Page.model_parametrized_name`), not Pydantic's `Page_ProductRead_`: the name a generated
    client gives the type."""
    components: dict[str, Any] = schema["components"]["schemas"]
    renames = {
        name: definition["title"]
        for name, definition in components.items()
        if isinstance(definition.get("title"), str)
        and definition["title"].isidentifier()
        and definition["title"] != name
        and definition["title"] not in components
    }
    if not renames:
        return
    for old, new in renames.items():
        components[new] = components.pop(old)
    refs = {
        f"#/components/schemas/{old}": f"#/components/schemas/{new}" for old, new in renames.items()
    }

    def rewrite(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref in refs:
                node["$ref"] = refs[ref]
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(schema)


def _no_null_parameter(parameter: dict[str, Any]) -> None:
    if parameter["in"] not in {"query", "header"}:
        return
    schema = parameter.get("schema", {})
    variants = schema.get("anyOf")
    if not isinstance(variants, list):
        if parameter["in"] == "header" and parameter["name"].lower() == "if-match":
            schema.setdefault("pattern", ENTITY_TAGS)
        return
    concrete = [v for v in variants if v != {"type": "null"}]
    if len(concrete) == 1 and len(concrete) < len(variants):
        del schema["anyOf"]
        parameter["schema"] = {**concrete[0], **schema}
        if parameter["in"] == "header" and parameter["name"].lower() == "if-match":
            parameter["schema"].setdefault("pattern", ENTITY_TAGS)


def _body_properties(schema: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    content = operation.get("requestBody", {}).get("content", {})
    body = content.get("application/json", {}).get("schema", {})
    ref = body.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        body = schema["components"]["schemas"].get(ref.rsplit("/", 1)[1], {})
    return set(body.get("properties", {}))


def _add_create_links(schema: dict[str, Any]) -> None:
    """Links from every `POST /things` (201) to the operations that take a thing's id."""
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for collection, item in paths.items():
        created = item.get("post", {}).get("responses", {}).get("201")
        key = next(
            (
                path[len(collection) + 2 : path.index("}", len(collection))]
                for path in paths
                if path.startswith(collection + "/{")
            ),
            None,
        )
        if key is None:
            continue
        if created is None:
            _add_list_links(paths, collection, key)
            continue
        # `{product_id}` is the created body's `id`; a resource addressed by another key
        # (`/roles/{name}`) links only to its own item paths, by that field.
        value = "$response.body#/id" if key.endswith("_id") else f"$response.body#/{key}"
        links: dict[str, Any] = {}
        for path, target_item in paths.items():
            own = path.startswith(collection + "/{")
            if not own and not key.endswith("_id"):
                continue
            for method, operation in target_item.items():
                if method not in _METHODS or "operationId" not in operation:
                    continue
                target = operation["operationId"]
                description = f"`{key}` = the created resource's {value.rsplit('/', 1)[1]}"
                parameters = {
                    f"{p['in']}.{p['name']}": value
                    for p in operation.get("parameters", [])
                    if p["name"] == key and p["in"] in {"path", "query"}
                }
                if parameters:
                    links[target] = {
                        "operationId": target,
                        "parameters": parameters,
                        "description": description,
                    }
                if method != "post" or own:
                    continue
                # One link per body field: `from_warehouse_id` and `to_warehouse_id` of one
                # transfer must differ, so a single warehouse never fills both.
                for name in sorted(_body_properties(schema, operation)):
                    if name == key or name.endswith(f"_{key}"):
                        links[f"{target}.{name}"] = {
                            "operationId": target,
                            "requestBody": {name: value},
                            "description": description,
                        }
        if links:
            created["links"] = links


def _add_list_links(paths: dict[str, dict[str, Any]], collection: str, key: str) -> None:
    """Links from a list that no operation creates into (`GET /webhooks/{endpoint_id}/deliveries`)
    to the operations on one of its items: the first item's id, and the list's own path ids
    as the request gave them. Without them no stateful client reaches those operations."""
    listed = paths[collection].get("get", {}).get("responses", {}).get("200")
    if listed is None or not key.endswith("_id"):
        return
    own = {name: f"$request.path.{name}" for name in re.findall(r"\{([^}]+)\}", collection)}
    links: dict[str, Any] = {}
    for path, target_item in paths.items():
        if not path.startswith(collection + "/{"):
            continue
        for method, operation in target_item.items():
            if method not in _METHODS or "operationId" not in operation:
                continue
            values = {**own, key: "$response.body#/items/0/id"}
            parameters = {
                f"path.{p['name']}": values[p["name"]]
                for p in operation.get("parameters", [])
                if p["in"] == "path" and p["name"] in values
            }
            links[operation["operationId"]] = {
                "operationId": operation["operationId"],
                "parameters": parameters,
                "description": f"`{key}` = the first listed item's id",
            }
    if links:
        listed["links"] = links
