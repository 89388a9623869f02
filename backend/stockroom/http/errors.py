"""RFC 9457 problem details: one error type for the whole app and the handlers that render it."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from stockroom.problems import (
    AppError,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PreconditionFailed,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
    problem_body,
    problem_document,
)

PROBLEM_CONTENT_TYPE = "application/problem+json"
logger = structlog.get_logger("stockroom.errors")


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details plus a stable machine-readable `code`."""

    type: str = Field(default="about:blank", examples=["about:blank"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["product not found"])
    code: str = Field(examples=["not_found"])
    request_id: str | None = None
    errors: list[FieldError] | None = None


class ValidationProblem(Problem):
    errors: list[FieldError] | None = Field(
        default=None, examples=[[{"loc": ["body", "quantity"], "msg": "...", "type": "..."}]]
    )


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = problem_document(status, code, title, detail, errors, extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


_STATUS_CODES = {
    400: ("bad_request", "Bad Request"),
    401: ("not_authenticated", "Unauthorized"),
    403: ("permission_denied", "Forbidden"),
    404: ("not_found", "Not Found"),
    405: ("method_not_allowed", "Method Not Allowed"),
    406: ("not_acceptable", "Not Acceptable"),
    409: ("conflict", "Conflict"),
    412: ("precondition_failed", "Precondition Failed"),
    413: ("payload_too_large", "Content Too Large"),
    415: ("unsupported_media_type", "Unsupported Media Type"),
    422: ("validation_error", "Unprocessable Content"),
    429: ("too_many_requests", "Too Many Requests"),
    503: ("service_unavailable", "Service Unavailable"),
}


def _clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    # FastAPI's errors carry the offending `input`, which may be a password: never echo it.
    return [
        {"loc": list(error.get("loc", [])), "msg": str(error.get("msg", "")), "type": error["type"]}
        for error in errors
    ]


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(
        exc.status,
        exc.code,
        exc.title,
        exc.detail,
        headers=exc.headers,
        errors=exc.errors,
        extra=exc.extra,
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _clean_validation_errors(exc.errors())
    first = errors[0] if errors else None
    detail = (
        f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        if first
        else "the request is not valid"
    )
    return problem_response(422, "validation_error", "Unprocessable Content", detail, errors=errors)


BODY_PARSE_FAILURE = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == BODY_PARSE_FAILURE:
        # FastAPI answers 400 for bodies it cannot decode (bad UTF-8, broken multipart); to a
        # client that is the same mistake as malformed JSON, which is a 422 everywhere else.
        return problem_response(
            422,
            "validation_error",
            "Unprocessable Content",
            "the request body could not be parsed",
            errors=[
                {"loc": ["body"], "msg": "the body could not be parsed", "type": "body_invalid"}
            ],
        )
    code, title = _STATUS_CODES.get(exc.status_code, ("http_error", "Error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such resource"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        detail = "this method is not allowed on this resource"
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem_response(exc.status_code, code, title, detail, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method the resource at the request's path answers (RFC 9110 15.5.6).

    FastAPI makes one route per method, and Starlette's 405 names only the methods of the first
    route whose path matched; the resource is that route's path template, whatever its methods.
    """
    path = request.scope.get("path", "")
    routes = [
        (context.path_format, context.methods or set())
        for context in iter_route_contexts(request.app.router.routes)
        if getattr(context, "path_regex", None) is not None and context.path_regex.match(path)
    ]
    template = routes[0][0] if routes else None
    return sorted({m for fmt, methods in routes if fmt == template for m in methods})


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if (
        isinstance(exc, DBAPIError)
        and not exc.connection_invalidated
        and not _is_connect_error(exc)
    ):
        return await _unhandled(request, exc)
    logger.warning("database unavailable", error=type(exc).__name__)
    return problem_response(
        503,
        "database_unavailable",
        "Service Unavailable",
        "the database is unavailable; retry later",
        headers={"Retry-After": "5"},
    )


def _is_connect_error(exc: DBAPIError) -> bool:
    origin = exc.orig
    name = type(origin).__name__ if origin is not None else ""
    return isinstance(exc, OperationalError) or "Connection" in name or "CannotConnect" in name


def internal_error_response(exc: BaseException) -> JSONResponse:
    """A 500 that says only that it failed, with the request id; the traceback goes to the log."""
    logger.error("unhandled exception", exc_info=exc)
    return problem_response(
        500,
        "internal_error",
        "Internal Server Error",
        "the server failed to handle this request; quote the request id when reporting it",
    )


async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
    return internal_error_response(exc)


def _is_connection_problem(exc: BaseException) -> bool:
    return isinstance(exc, OSError | ConnectionError) or type(exc).__name__ in {
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "InterfaceError",
    }


async def _os_error(request: Request, exc: Exception) -> JSONResponse:
    if _is_connection_problem(exc):
        return await _database_unavailable(request, exc)
    return await _unhandled(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(OSError, _os_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the given error statuses, all problem details."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        code, title = _STATUS_CODES.get(status, ("http_error", "Error"))
        model = ValidationProblem if status == 422 else Problem
        out[status] = {
            "model": model,
            "description": title,
            "content": {
                PROBLEM_CONTENT_TYPE: {
                    "schema": {"$ref": f"#/components/schemas/{model.__name__}"},
                    "example": {
                        "type": "about:blank",
                        "title": title,
                        "status": status,
                        "detail": title.lower(),
                        "code": code,
                    },
                }
            },
        }
    return out


# Re-exported: every domain imports its error bases from here.
__all__ = [
    "BODY_PARSE_FAILURE",
    "PROBLEM_CONTENT_TYPE",
    "AppError",
    "BadRequest",
    "Conflict",
    "FieldError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "PreconditionFailed",
    "Problem",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "ValidationFailed",
    "ValidationProblem",
    "allowed_methods",
    "install_error_handlers",
    "internal_error_response",
    "problem_body",
    "problem_document",
    "problem_response",
    "problem_responses",
]
