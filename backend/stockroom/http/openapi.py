"""OpenAPI post-processing: the error responses every operation can give, documented once.

Routes document their own domain errors (404, 409, 412, ...). What the shared machinery can
answer for any route is added here, so the schema lists every status a client may see.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from stockroom.http.errors import PROBLEM_CONTENT_TYPE, Problem, ValidationProblem

_METHODS = {"get", "post", "put", "patch", "delete"}


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
                if operation.get("parameters") or operation.get("requestBody"):
                    responses.setdefault("422", VALIDATION)
                if operation.get("requestBody"):
                    responses.setdefault("413", TOO_LARGE)
                if operation.get("security"):
                    responses.setdefault("401", UNAUTHORIZED)
                if not path.endswith("/health/live"):
                    responses.setdefault("503", UNAVAILABLE)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
