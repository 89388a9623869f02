"""The HTTP client of deliveries: one POST, 10 s at most, no redirects, at most 64 KiB of the
response read, and every connection through the forgery guard."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpcore
import httpx

from stockroom.webhooks.guard import GuardedTransport, TargetGuard, TargetRefused

MAX_RESPONSE_BYTES = 64 * 1024
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
    def __init__(
        self,
        guard: TargetGuard,
        *,
        timeout_s: float = 10.0,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        max_connections: int = 100,
    ) -> None:
        self.guard = guard
        self.timeout_s = timeout_s
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=20)
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(guard, inner=network_backend, limits=limits),
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptOutcome:
        """One attempt. Never raises for anything the target or the network does."""
        started = time.monotonic()
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            self.guard.check_shape(url)  # the URL was checked at creation; settings may differ
            # The whole attempt, not each phase, is bounded: a target trickling bytes cannot
            # hold a delivery past the timeout.
            async with asyncio.timeout(self.timeout_s):
                request_headers = {
                    **headers,
                    "user-agent": USER_AGENT,
                    "accept-encoding": "identity",
                }
                async with self._client.stream(
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


async def _read_capped(response: httpx.Response) -> str:
    """Up to 64 KiB of the raw body (never decompressed: no zip bomb); the rest is not read."""
    received = bytearray()
    async for chunk in response.aiter_raw():
        received += chunk
        if len(received) >= MAX_RESPONSE_BYTES:
            break
    return bytes(received[:MAX_RESPONSE_BYTES]).decode("utf-8", "replace")[:EXCERPT_CHARS]
