"""Prometheus metrics. Routes are labelled by template (`/products/{product_id}`), never raw path,
so label cardinality stays bounded."""

from __future__ import annotations

import hmac
import ipaddress

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest
from starlette.requests import Request

from stockroom.http.errors import PermissionDenied, Unauthorized

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "stockroom_http_requests_total",
    "HTTP requests handled, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "stockroom_http_request_duration_seconds",
    "HTTP request latency, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)


def generate_latest() -> bytes:
    return _generate_latest(REGISTRY)


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_metrics_access(request: Request, token: str | None) -> None:
    """`/metrics` shows route-level counts (login failures among them): with METRICS_TOKEN it
    needs that bearer token; without, only a client on this host (a sidecar scraper) gets it."""
    if token is not None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            raise Unauthorized("/metrics needs the bearer token set in METRICS_TOKEN")
        return
    if not _is_loopback(request.client.host if request.client else None):
        raise PermissionDenied(
            "/metrics answers loopback clients only; set METRICS_TOKEN to scrape from elsewhere"
        )


__all__ = [
    "CONTENT_TYPE_LATEST",
    "HTTP_LATENCY",
    "HTTP_REQUESTS",
    "REGISTRY",
    "check_metrics_access",
    "generate_latest",
]
