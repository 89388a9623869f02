"""RFC 9457 problem details: one error type for the whole app and the handlers that render it."""

from __future__ import annotations

from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from stockroom.http.request_id import current_request_id

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


class AppError(Exception):
    """Base of every domain error: an HTTP status, a stable code and a human-readable detail."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal Server Error"
    default_detail: ClassVar[str] = "the request failed"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        self.detail = detail or self.default_detail
        self.headers = headers or {}
        self.errors = errors
        self.extra = extra
        super().__init__(self.detail)


class BadRequest(AppError):
    status, code, title, default_detail = 400, "bad_request", "Bad Request", "bad request"


class Unauthorized(AppError):
    status, code, title = 401, "not_authenticated", "Unauthorized"
    default_detail = "missing, invalid or expired credentials"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class PermissionDenied(AppError):
    status, code, title = 403, "permission_denied", "Forbidden"
    default_detail = "you do not have permission to do this"


class NotFound(AppError):
    status, code, title, default_detail = 404, "not_found", "Not Found", "resource not found"


class Conflict(AppError):
    status, code, title, default_detail = 409, "conflict", "Conflict", "the request conflicts"


class PreconditionFailed(AppError):
    status, code, title = 412, "precondition_failed", "Precondition Failed"
    default_detail = "the resource has changed since you read it (If-Match does not match)"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Content Too Large"
    default_detail = "the request body is too large"


class ValidationFailed(AppError):
    status, code, title = 422, "validation_error", "Unprocessable Content"
    default_detail = "the request is not valid"

    @classmethod
    def at(cls, loc: list[str | int], msg: str, type_: str = "value_error") -> ValidationFailed:
        """A single-field validation error, shaped like FastAPI's own."""
        return cls(msg, errors=[{"loc": loc, "msg": msg, "type": type_}])


class TooManyRequests(AppError):
    status, code, title = 429, "too_many_requests", "Too Many Requests"
    default_detail = "too many requests; retry later"


class ServiceUnavailable(AppError):
    status, code, title = 503, "service_unavailable", "Service Unavailable"
    default_detail = "a backing service is unavailable; retry later"


def _problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[dict[str, Any]] | None,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": current_request_id(),
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


def problem_body(exc: AppError) -> dict[str, Any]:
    """The problem document the handler renders for `exc` (stored for idempotent replays)."""
    return _problem(exc.status, exc.code, exc.title, exc.detail, exc.errors, exc.extra)


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
    body = _problem(status, code, title, detail, errors, extra)
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


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
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
    if exc.status_code == 405:
        detail = "this method is not allowed on this resource"
    return problem_response(exc.status_code, code, title, detail, headers=dict(exc.headers or {}))


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
