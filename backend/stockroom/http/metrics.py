"""Prometheus metrics. Routes are labelled by template (`/products/{product_id}`), never raw path,
so label cardinality stays bounded."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest

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


__all__ = ["CONTENT_TYPE_LATEST", "HTTP_LATENCY", "HTTP_REQUESTS", "REGISTRY", "generate_latest"]
