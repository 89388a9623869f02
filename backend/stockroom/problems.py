"""The errors every layer raises and the problem document (RFC 9457) each one becomes.

The bottom layer, below `http` (which renders these documents as responses) and `idempotency`
(which stores them for replays), so that neither imports the other for them. `stockroom.http.errors`
re-exports every name here: domains keep importing their errors from there.
"""

from __future__ import annotations

from typing import Any, ClassVar

from stockroom.context import current_request_id


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


def problem_document(
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
    return problem_document(exc.status, exc.code, exc.title, exc.detail, exc.errors, exc.extra)
