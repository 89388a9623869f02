"""The HTTP client of deliveries: one POST, 10 s at most, no redirects, at most 64 KiB of the
response read, and every connection through the forgery guard."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass

import httpcore
import httpx

from stockroom.webhooks.guard import GuardedTransport, TargetGuard, TargetRefused

MAX_RESPONSE_BYTES = 64 * 1024
# Attempts in flight (so connections) per target URL, a soft limit (see `WebhookClient.post`).
# httpcore's pool checks every connection it holds, twice over for idle ones, on each request:
# a few busy connections per target cost less CPU per delivery than many. 8 at once is 80
# deliveries/s to a target answering in 100 ms; other targets run beside it, up to
# WEBHOOK_CONCURRENCY in all.
MAX_CONNECTIONS_PER_TARGET = 8
EXCERPT_CHARS = 1000
USER_AGENT = "Stockroom-Webhooks/1.0"


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    status_code: int | None
    error: str | None
    excerpt: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookClient:
    """One httpx client (its own keep-alive pool) per target URL, made on first use.

    Per target, not one for all: httpcore's pool scans every connection and queued request of
    the pool on each request and release, so one pool serving many endpoints costs more CPU per
    delivery the more connections it holds; per target, a pool holds what that target needs.
    At most `max_targets` pools are kept (least recently used closed first, once idle). They
    share one TLS context: building one loads the CA bundle (tens of ms)."""

    def __init__(
        self,
        guard: TargetGuard,
        *,
        timeout_s: float = 10.0,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        max_connections: int = 100,
        max_connections_per_target: int = MAX_CONNECTIONS_PER_TARGET,
        max_targets: int = 256,
    ) -> None:
        self.guard = guard
        self.timeout_s = timeout_s
        self.max_targets = max_targets
        self._network_backend = network_backend
        # Attempts beyond a target's share wait for a slot (see `post`), not in httpcore's
        # queue (which it also scans on every request); idle connections beyond it are closed.
        self._per_target = max(1, min(max_connections, max_connections_per_target))
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=self._per_target
        )
        self._ssl_context: ssl.SSLContext | None = None
        self._targets: OrderedDict[str, _Target] = OrderedDict()
        self._retired: list[_Target] = []

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is not None:
            self._targets.move_to_end(url)
            return target
        # The URL was checked at the endpoint's creation, but settings may differ since; checked
        # once per target (the guard does not change while this client lives).
        self.guard.check_shape(url)
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context(trust_env=False)
        transport = GuardedTransport(
            self.guard,
            inner=self._network_backend,
            limits=self._limits,
            ssl_context=self._ssl_context,
        )
        target = _Target(
            httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(self.timeout_s),
                follow_redirects=False,
                trust_env=False,
            ),
            asyncio.Semaphore(self._per_target),
        )
        self._targets[url] = target
        while len(self._targets) > self.max_targets:
            self._retired.append(self._targets.popitem(last=False)[1])
        return target

    async def _close_idle_retired(self) -> None:
        idle = [t for t in self._retired if t.in_flight == 0]
        self._retired = [t for t in self._retired if t.in_flight]
        for target in idle:
            await target.client.aclose()

    async def aclose(self) -> None:
        targets, self._targets = [*self._targets.values(), *self._retired], OrderedDict()
        self._retired = []
        for target in targets:
            await target.client.aclose()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptOutcome:
        """One attempt. Never raises for anything the target or the network does."""
        try:
            target = self._target(url)
        except TargetRefused as exc:
            return AttemptOutcome(None, f"target refused: {exc.reason}", None, 0)
        target.in_flight += 1  # waiting included: a retired target is closed only when idle
        slot = False
        try:
            # A soft limit: waiting for a slot is bounded by one timeout, then the attempt goes
            # ahead anyway (the pool allows WEBHOOK_CONCURRENCY connections), so that wait plus
            # attempt stays well inside the claim's lease (3 timeouts): a slow target must not
            # make a claimed delivery fall due again while it waits.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout_s):
                    await target.slots.acquire()
                    slot = True
            return await self._post(target, url, body, headers)
        finally:
            if slot:
                target.slots.release()
            target.in_flight -= 1
            if self._retired:
                await self._close_idle_retired()

    async def _post(
        self, target: _Target, url: str, body: bytes, headers: dict[str, str]
    ) -> AttemptOutcome:
        started = time.monotonic()
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            # The whole attempt, not each phase, is bounded: a target trickling bytes cannot
            # hold a delivery past the timeout.
            async with asyncio.timeout(self.timeout_s):
                request_headers = {
                    **headers,
                    "user-agent": USER_AGENT,
                    "accept-encoding": "identity",
                }
                async with target.client.stream(
                    "POST", url, content=body, headers=request_headers
                ) as response:
                    status = response.status_code
                    excerpt = await _read_capped(response)
        except TargetRefused as exc:
            error = f"target refused: {exc.reason}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"timed out after {self.timeout_s:g} s"
        except httpx.ConnectError as exc:
            error = f"connection failed: {exc}" if str(exc) else "connection failed"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        if status is not None and error is not None:
            status = None  # the response did not arrive whole
        if status is not None and not 200 <= status < 300:
            error = f"HTTP {status}"
        duration_ms = int((time.monotonic() - started) * 1000)
        return AttemptOutcome(status, error, excerpt, duration_ms)


@dataclass(slots=True)
class _Target:
    client: httpx.AsyncClient
    slots: asyncio.Semaphore
    in_flight: int = 0


async def _read_capped(response: httpx.Response) -> str:
    """Up to 64 KiB of the raw body (never decompressed: no zip bomb); the rest is not read."""
    received = bytearray()
    async for chunk in response.aiter_raw():
        received += chunk
        if len(received) >= MAX_RESPONSE_BYTES:
            break
    return bytes(received[:MAX_RESPONSE_BYTES]).decode("utf-8", "replace")[:EXCERPT_CHARS]
