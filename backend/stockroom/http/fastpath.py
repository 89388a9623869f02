"""Fast paths: the hottest requests served in front of FastAPI's router, for what they cost.

FastAPI's route matching, dependency resolution, body validation and response handling cost
about 1 ms of CPU per request on this machine, more than the database work of a stock posting
(the issue-14 profile). A fast path is a plain async function for one route that answers the
ordinary, successful request with the same bytes the FastAPI route would, and *declines*
(returns None) everything else: a missing or bad token, an unknown user, a missing permission,
a body that does not validate, an unexpected header. A declined request goes on to the FastAPI
route unchanged (its body replayed), so every refusal, validation error and OpenAPI-documented
behaviour stays the route's own; the fast path only ever has to be right about the happy path.

A fast path declines only before it has changed anything. Once it has written, an exception is
rendered by the app's own exception handlers (as Starlette's `ExceptionMiddleware` would), or
left to the request-context middleware's 500 if none matches.

The middleware sits innermost among ours: the request id, access log, metrics, security
headers and body limits apply to fast paths as to every route. `scope["route"]` is set to the
FastAPI route the fast path stands for, so logs and metrics name the same route template.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockroom.http.middleware import ROUTE_TEMPLATE_KEY

PATH_PARAMETER = "{}"


def _key(template: str) -> str:
    """The lookup key of a route template: its last segment `{}` if that is a parameter, else
    its last but one if that is (`/sales-orders/{}/confirm`)."""
    head, _, last = template.rpartition("/")
    if last.startswith("{"):
        return f"{head}/{PATH_PARAMETER}"
    base, _, middle = head.rpartition("/")
    return f"{base}/{PATH_PARAMETER}/{last}" if middle.startswith("{") else template


class FastRequest:
    """What a fast path reads: the scope, the request body, the headers (names lowercase)."""

    __slots__ = ("body", "headers", "param", "receive", "scope", "template")

    def __init__(
        self, scope: Scope, receive: Receive, body: bytes, param: str | None, template: str
    ) -> None:
        self.scope = scope
        self.template = template  # the route's full path template (`route_template`'s answer)
        self.receive = receive
        self.body = body
        self.param = param  # the path's parameter segment, for a route with one
        # The first value wins, as in Starlette's `Headers.get` (what the route reads).
        self.headers: dict[bytes, bytes] = dict(reversed(scope["headers"]))

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return None if value is None else value.decode("latin-1")

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    @property
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.scope.setdefault("state", {})
        return state

    @property
    def app(self) -> Any:
        return self.scope["app"]


class JsonResponse:
    """A JSON body sent as Starlette's `Response(body, status, headers, "application/json")`
    sends it (the given headers, then content-length and content-type), without building the
    Response (its header handling is a tenth of a fast read's own CPU)."""

    __slots__ = ("body", "raw_headers", "status_code")

    def __init__(self, body: bytes, status_code: int, *headers: tuple[bytes, bytes]) -> None:
        self.body = body
        self.status_code = status_code
        self.raw_headers = [
            *headers,
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})


FastHandler = Callable[[FastRequest], Awaitable[Response | JsonResponse | None]]


@dataclass(frozen=True, slots=True)
class FastRoute:
    """`handler` for `method` on `path`, the full path template of the FastAPI route it stands
    for (`/api/v1/stock-movements`, or `/api/v1/products/{product_id}`: one path parameter,
    last or last but one, handed over unconverted as `FastRequest.param`)."""

    method: str
    path: str
    handler: FastHandler
    reads_body: bool = False


def _api_route(app: Any, method: str, path: str) -> Any:
    for context in iter_route_contexts(app.router.routes):
        if context.path_format == path and method in (context.methods or ()):
            return context.original_route
    raise LookupError(f"no route {method} {path} for a fast path to stand for")


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole body, and the messages it came in (to replay them for a declined request)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return b"", messages  # a disconnect: the route will see it too
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), messages


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


class FastPathMiddleware:
    """Serves the fast paths of `routes`; everything else goes to `app` untouched."""

    def __init__(self, app: ASGIApp, *, routes: Iterable[FastRoute] = ()) -> None:
        self.app = app
        self.routes: Mapping[tuple[str, str], FastRoute] = {
            (r.method, _key(r.path)): r for r in routes
        }
        self.with_parameter = any(key.endswith("/" + PATH_PARAMETER) for _, key in self.routes)
        self.with_inner_parameter = any(f"/{PATH_PARAMETER}/" in key for _, key in self.routes)
        self.api_routes: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        param = None
        route = self.routes.get((method, path))
        if route is None and self.with_parameter:
            head, _, param = path.rpartition("/")
            route = self.routes.get((method, f"{head}/{PATH_PARAMETER}"))
        if route is None and self.with_inner_parameter:
            rest, _, last = path.rpartition("/")
            head, _, param = rest.rpartition("/")
            route = self.routes.get((method, f"{head}/{PATH_PARAMETER}/{last}"))
        if route is None or scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        await self._serve(route, param, scope, receive, send)

    async def _serve(
        self, route: FastRoute, param: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        messages: list[Message] = []
        key = (route.method, route.path)
        api_route = self.api_routes.get(key)
        if api_route is None:
            api_route = self.api_routes[key] = _api_route(scope["app"], route.method, route.path)
        scope["route"] = api_route
        scope[ROUTE_TEMPLATE_KEY] = route.path
        try:
            body = b""
            if route.reads_body:
                # A body over the limit raises here (BodySizeLimitMiddleware): a 413 below.
                body, messages = await _read_body(receive)
            request = FastRequest(scope, receive, body, param, route.path)
            response = await route.handler(request)
        except Exception as exc:
            handler = _exception_handler(scope["app"], exc)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
        if response is None:  # declined: the FastAPI route answers, from the same bytes
            await self.app(scope, _replaying(messages, receive), send)
            return
        await response(scope, receive, send)


def _exception_handler(app: Any, exc: Exception) -> Any:
    """The app's handler for `exc` (the first of its classes that has one), as Starlette's
    ExceptionMiddleware picks it."""
    handlers: dict[Any, Any] = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
