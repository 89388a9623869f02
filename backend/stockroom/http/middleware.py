"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware): request id, access log, metrics,
security headers, and the request body size limit."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockroom.http.errors import internal_error_response, problem_response
from stockroom.http.metrics import HTTP_LATENCY, HTTP_REQUESTS
from stockroom.http.request_id import REQUEST_ID_HEADER, choose_request_id, set_request_id

access_log = structlog.get_logger("stockroom.access")
UNMATCHED_ROUTE = "<unmatched>"
ROUTE_TEMPLATE_KEY = "stockroom.route_template"


def route_template(scope: Scope) -> str:
    """The matched route's template with the prefixes of the routers it is included in.

    FastAPI keeps included routes' own paths (without the including prefix), so the prefix is
    taken from the request path: the leading segments not covered by the route's template.
    """
    known = scope.get(ROUTE_TEMPLATE_KEY)
    if known is not None:  # a fast path's (http.fastpath): its full template, known up front
        return str(known)
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        # Plain Starlette routes (/docs, /openapi.json) carry only their endpoint; they have no
        # path parameters, so their path is their template.
        return scope["path"] if scope.get("endpoint") is not None else UNMATCHED_ROUTE
    request_parts = [part for part in scope["path"].split("/") if part]
    template_parts = [part for part in template.split("/") if part]
    prefix_parts = request_parts[: max(len(request_parts) - len(template_parts), 0)]
    return "/" + "/".join(prefix_parts + template_parts)


def relative_location(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    """A redirect's `Location` as a path: the router's trailing-slash redirect builds an absolute
    URL from the request's Host header, which a client (or a cache poisoner) chooses. Every
    redirect of this API stays on this site, so the path is all a client needs."""
    if name.lower() != b"location":
        return name, value
    parts = urlsplit(value.decode("latin-1"))
    if not parts.scheme and not parts.netloc:
        return name, value
    path = "/" + parts.path.lstrip("/")  # never "//host": that is absolute again
    return name, urlunsplit(("", "", path, parts.query, parts.fragment)).encode("latin-1")


@functools.cache
def _series(method: str, route: str, status: int) -> Any:
    """The request counter's child for these labels. Cached: `labels()` validates the labels
    and takes the metric's lock on every call. Bounded: routes are templates (unknown paths
    are one `<unmatched>` route), methods and statuses a handful."""
    return HTTP_REQUESTS.labels(method, route, str(status))


@functools.cache
def _latency_series(method: str, route: str) -> Any:
    return HTTP_LATENCY.labels(method, route)


class RequestContextMiddleware:
    """Sets the request id, adds security headers, logs one line and records metrics."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.security_headers: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]
        if hsts:
            self.security_headers.append(
                (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                client_id = value.decode("latin-1")
                break
        request_id = choose_request_id(client_id)
        set_request_id(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        began = time.perf_counter()
        status_holder = [500]
        response_started = [False]
        header_value = request_id.encode("latin-1")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_started[0] = True
                status = status_holder[0] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                if 300 <= status < 400:
                    headers = [relative_location(k, v) for k, v in headers]
                headers.append((REQUEST_ID_HEADER.lower().encode(), header_value))
                headers.extend(self.security_headers)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            # Handled here rather than by Starlette's outermost error middleware, so the 500
            # still carries the request id, the security headers, a log line and a metric.
            if response_started[0]:
                raise
            await internal_error_response(exc)(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - began
            route = route_template(scope)
            method = scope["method"]
            status = status_holder[0]
            _series(method, route, status).inc()
            _latency_series(method, route).observe(elapsed)
            state: dict[str, Any] = scope.get("state", {})
            access_log.info(
                "request",
                method=method,
                route=route,
                path=scope["path"],
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                user_id=str(state["user_id"]) if state.get("user_id") else None,
            )
            structlog.contextvars.clear_contextvars()
            set_request_id(None)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is larger than the limit of {limit} bytes")


# Answers whether the request's credentials are good (a verified, live access token): run for
# upload routes before their body is read. Given by the app (auth sits above this layer).
Authenticate = Callable[[Scope], Awaitable[bool]]


class BodySizeLimitMiddleware:
    """Request body limits per route, and authentication before a large body is read.

    Every route gets `max_body_bytes`; only the routes in `upload_routes` (method, path) get
    `max_upload_bytes`, and their callers are authenticated (`authenticate`) before one byte
    of the body is read, so an anonymous client cannot make the server take in an upload. A
    body over the limit is refused with 413 by its Content-Length up front, or as soon as the
    streamed bytes pass it: never read whole.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_upload_bytes: int,
        upload_routes: frozenset[tuple[str, str]] = frozenset(),
        authenticate: Authenticate | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.upload_routes = upload_routes
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = (scope["method"], scope["path"].rstrip("/")) in self.upload_routes
        limit = self.max_upload_bytes if upload else self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._refuse(scope, receive, send, limit)
                    return
        if upload and self.authenticate is not None and not await self.authenticate(scope):
            await problem_response(
                401,
                "not_authenticated",
                "Unauthorized",
                "an upload needs a valid access token before its body is sent",
                headers={"WWW-Authenticate": "Bearer"},
            )(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPExceptions from body parsing; the handler renders 413.
                    raise _too_large(limit)
            return message

        await self.app(scope, limited_receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            413,
            "payload_too_large",
            "Content Too Large",
            f"the request body is larger than the limit of {limit} bytes",
        )
        await response(scope, receive, send)
