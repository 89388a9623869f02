"""The forgery guard: webhook targets must be public addresses, checked after DNS resolution and
connected to exactly as checked.

A URL's host is resolved once per connection; every address it resolves to must be public (one
private answer refuses the target, so a name that mixes both cannot be steered), and the
connection is opened to one of those checked addresses, never by resolving the name again: a
short-TTL record that changes between the check and the connect ("DNS rebinding") cannot move
the request. TLS still verifies the certificate against the URL's host name.

`WEBHOOK_ALLOW_PRIVATE_TARGETS=true` (development and tests) turns the address check off; the
name is still resolved once and connected to as resolved.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from stockroom.webhooks.network import AsyncioBackend

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[Address]]]

# Cloud metadata services (AWS, GCP, Azure: 169.254.169.254; AWS ECS: 169.254.170.2; AWS IPv6:
# fd00:ec2::254; Alibaba: 100.100.100.200; Oracle: 192.0.0.192). Most are already link-local or
# not global; named here so that the refusal says what they are.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
RESOLVE_TIMEOUT_S = 5.0


class TargetRefused(Exception):
    """A webhook URL that may not be called: not https in production, or a non-public address."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: Address) -> str | None:
    """Why a connection to `address` is refused, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and (reason := address_refusal(embedded)) is not None:
            return reason
        if address.scope_id:
            return "a scoped (link-local) address"
    checks = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    for refused, reason in checks:
        if refused:
            return reason
    return None


_LABEL = re.compile(rb"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def _valid_host_name(raw_host: bytes) -> bool:
    """A DNS name the resolver can take (RFC 1035 lengths; `_` allowed as DNS allows it): the
    system resolver raises UnicodeError, not a resolution error, for an empty or long label."""
    name = raw_host.removesuffix(b".")
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split(b"."))


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[Address]:
    """Every address the system resolver gives for `host` (IP literals as themselves)."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        # Bounded: a create request must not hang on a slow name server (a delivery attempt is
        # bounded by its own timeout as well).
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefused(f"the host name does not resolve ({exc.strerror})") from None
    except TimeoutError:
        raise TargetRefused("the host name did not resolve in time") from None
    except UnicodeError:
        raise TargetRefused("not a valid host name") from None
    addresses: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True, slots=True)
class TargetGuard:
    resolver: Resolver = system_resolver
    allow_private: bool = False
    require_https: bool = False

    def check_shape(self, url: str) -> httpx.URL:
        """The URL parsed, or TargetRefused: http(s) only (https in production), a host, no
        credentials."""
        try:
            parsed = httpx.URL(url)
            host = parsed.host  # decodes IDNA: a malformed A-label (`xn--zz`) raises here
            port = parsed.port
        except (httpx.InvalidURL, ValueError):  # IDNA errors are UnicodeError, a ValueError
            raise TargetRefused("not a valid URL") from None
        allowed = ("https",) if self.require_https else ("http", "https")
        if parsed.scheme not in allowed:
            raise TargetRefused(f"the scheme must be {' or '.join(allowed)}")
        if not host:
            raise TargetRefused("the URL has no host")
        if _literal(host) is None and not _valid_host_name(parsed.raw_host):
            raise TargetRefused("not a valid host name")
        if port is not None and not 1 <= port <= 65535:
            raise TargetRefused("the port must be between 1 and 65535")
        if parsed.userinfo:
            raise TargetRefused("credentials in the URL are not allowed")
        return parsed

    async def resolve(self, host: str, port: int) -> list[Address]:
        """The addresses to connect to for `host`, every one of them checked."""
        addresses = await self.resolver(host, port)
        if not addresses:
            raise TargetRefused("the host name does not resolve")
        if not self.allow_private:
            for address in addresses:
                reason = address_refusal(address)
                if reason is not None:
                    raise TargetRefused(f"the host resolves to {reason} ({address})")
        return addresses

    async def check_url(self, url: str) -> None:
        """Refuse (TargetRefused) a URL that could not be delivered to: what creation checks."""
        parsed = self.check_shape(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        await self.resolve(parsed.host, port)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer with the guard in front: resolve, check, connect to the checked
    address. Tests pass their own `inner` backend to see (and refuse) every connection."""

    def __init__(self, guard: TargetGuard, inner: httpcore.AsyncNetworkBackend | None = None):
        self.guard = guard
        self.inner = inner or AsyncioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.guard.resolve(host, port)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request and error mapping unchanged) over a connection pool whose
    network backend is guarded. No proxy, ever: a proxy would connect on our behalf unchecked."""

    def __init__(
        self,
        guard: TargetGuard,
        *,
        inner: httpcore.AsyncNetworkBackend | None = None,
        limits: httpx.Limits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx builds its pool without a way to pass a network backend; rebuild it with ours
        # (same arguments httpx uses for a proxy-less pool).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(guard, inner),
        )
