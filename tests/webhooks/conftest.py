"""Webhook test kit: a real receiver on 127.0.0.1, a resolver the test controls, a network layer
that fails the test if it is asked to connect, an adjustable clock, and a dispatcher on the
test's own sessions."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpcore
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.context import Actor, Context
from stockroom.events import record
from stockroom.types import utcnow
from stockroom.webhooks.client import WebhookClient
from stockroom.webhooks.dispatcher import Dispatcher
from stockroom.webhooks.guard import Address, TargetGuard
from stockroom.webhooks.models import WebhookEndpoint
from stockroom.webhooks.signing import generate_secret

Sessionmaker = async_sessionmaker[AsyncSession]
R = TypeVar("R", bound="Receiver")
ADMIN_CTX = Context(
    actor=Actor(id=uuid.UUID("01890000-0000-7000-8000-0000000000aa"), email="admin@example.com"),
    request_id="req-webhooks",
)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def key(self) -> tuple[str, str | None]:
        """One delivery: the endpoint (path) and the event (`webhook-id`)."""
        return self.path, self.headers.get("webhook-id")

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 (a thread of the test process). It answers each POST with the
    next scripted status (then `default_status`); a status of None sleeps past the client's
    timeout instead of answering."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    script: list[int | None] = field(default_factory=list)
    default_status: int = 200
    hang_s: float = 2.0
    # Answer 500 to the first request of each (path, webhook-id), then `default_status`.
    fail_first: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def respond(self, request: BaseHTTPRequestHandler) -> int | None:
        length = int(request.headers.get("content-length", "0"))
        body = request.rfile.read(length)
        with self.lock:
            self.received.append(
                Received(request.path, {k.lower(): v for k, v in request.headers.items()}, body)
            )
            if self.script:
                return self.script.pop(0)
            if self.fail_first:
                key = self.received[-1].key
                if sum(r.key == key for r in self.received) == 1:
                    return 500
            return self.default_status

    def ids(self) -> list[str]:
        with self.lock:
            return [r.headers["webhook-id"] for r in self.received]


def _handler(receiver_ref: list[Receiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = receiver_ref[0]
            status = receiver.respond(self)
            if status is None:
                time.sleep(receiver.hang_s)
                return
            payload = b'{"ok": true}'
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) drops connections beyond it, and the client retries them
    # a second later: many concurrent deliveries would look slow for the receiver's sake.
    request_queue_size = 256


@contextmanager
def serving(kind: type[R]) -> Iterator[R]:
    """A receiver of the given kind listening on 127.0.0.1 while the block runs."""
    ref: list[Receiver] = []
    server = _Server(("127.0.0.1", 0), _handler(ref))
    server.daemon_threads = True
    instance = kind(server)
    ref.append(instance)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield instance
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving(Receiver) as instance:
        yield instance


class Clock:
    """The dispatcher's clock: real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)

    def move_to(self, moment: datetime) -> None:
        self.offset += moment - self() + timedelta(milliseconds=1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


class FakeResolver:
    """Resolves the names the test sets; anything else is a test failure."""

    def __init__(self, names: dict[str, Sequence[str]] | None = None) -> None:
        self.names = {k: [ipaddress.ip_address(a) for a in v] for k, v in (names or {}).items()}
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[Address]:
        self.asked.append(host)
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        assert host in self.names, f"the test resolver was asked for {host!r}"
        return list(self.names[host])


class NoConnections(httpcore.AsyncNetworkBackend):
    """A network layer that fails the test if it is ever asked to connect; or, given `answer`,
    answers every connection with those raw bytes (and records where it was asked to go)."""

    def __init__(self, answer: bytes | None = None) -> None:
        self.answer = answer
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.connects.append((host, port))
        if self.answer is None:
            pytest.fail(f"a connection to {host}:{port} was attempted")
        return httpcore.AsyncMockStream([self.answer])

    async def sleep(self, seconds: float) -> None:
        pass


def make_dispatcher(
    sessionmaker: Sessionmaker,
    *,
    guard: TargetGuard | None = None,
    clock: Callable[[], datetime] = utcnow,
    timeout_s: float = 1.0,
    network: httpcore.AsyncNetworkBackend | None = None,
    concurrency: int = 50,
    poll_interval_s: float = 0.5,
) -> Dispatcher:
    client = WebhookClient(
        guard or TargetGuard(allow_private=True), timeout_s=timeout_s, network_backend=network
    )
    return Dispatcher(
        sessionmaker, client, concurrency=concurrency, clock=clock, poll_interval_s=poll_interval_s
    )


@pytest.fixture
async def dispatcher_for() -> AsyncIterator[Callable[..., Dispatcher]]:
    made: list[Dispatcher] = []

    def build(sessionmaker: Sessionmaker, **kwargs: Any) -> Dispatcher:
        dispatcher = make_dispatcher(sessionmaker, **kwargs)
        made.append(dispatcher)
        return dispatcher

    yield build
    for dispatcher in made:
        await dispatcher.client.aclose()


async def make_endpoint(
    sessionmaker: Sessionmaker,
    url: str,
    event_types: Sequence[str] = ("*",),
    *,
    include_costs: bool = False,
    is_active: bool = True,
) -> WebhookEndpoint:
    """An endpoint written straight to the database (no URL check: delivery-time tests)."""
    async with sessionmaker() as session, session.begin():
        endpoint = WebhookEndpoint(
            url=url,
            event_types=list(event_types),
            include_costs=include_costs,
            is_active=is_active,
            secret=generate_secret(),
        )
        session.add(endpoint)
    return endpoint


async def record_events(
    sessionmaker: Sessionmaker, *types: str, data: dict[str, Any] | None = None
) -> list[uuid.UUID]:
    """One committed transaction recording one event of each type."""
    async with sessionmaker() as session, session.begin():
        return [
            record(session, t, ADMIN_CTX, entity=("widget", uuid.uuid4()), data=data) for t in types
        ]


async def deliveries(sessionmaker: Sessionmaker, endpoint_id: uuid.UUID | None = None) -> list[Any]:
    async with sessionmaker() as session, session.begin():
        rows = await session.execute(
            text(
                "SELECT id, endpoint_id, event_id, event_type, status, attempts, next_attempt_at, "
                "last_status_code, last_error, delivered_at FROM webhook_deliveries "
                "WHERE CAST(:endpoint AS uuid) IS NULL OR endpoint_id = CAST(:endpoint AS uuid) "
                "ORDER BY created_at, id"
            ),
            {"endpoint": endpoint_id},
        )
        return list(rows)
