"""Outbox and relay metrics, exported on `/metrics` with the HTTP ones (same registry).

Backlog and lag are gauges refreshed by the relay loop (about once a second) and by every
`/health/ready` probe; the counters and the delay histogram move as batches are delivered.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from stockroom.http.metrics import REGISTRY

OUTBOX_BACKLOG = Gauge(
    "stockroom_outbox_backlog",
    "Outbox events committed but not yet delivered to the event store.",
    registry=REGISTRY,
)
RELAY_LAG = Gauge(
    "stockroom_relay_lag_seconds",
    "Age of the oldest undelivered outbox event (0 when the backlog is empty).",
    registry=REGISTRY,
)
OUTBOX_DELIVERED = Counter(
    "stockroom_outbox_delivered",
    "Outbox events delivered to the event store by this process.",
    registry=REGISTRY,
)
OUTBOX_DELIVERY_FAILURES = Counter(
    "stockroom_outbox_delivery_failures",
    "Failed delivery attempts, counted per event (each is retried with backoff).",
    registry=REGISTRY,
)
DELIVERY_DELAY = Histogram(
    "stockroom_outbox_delivery_delay_seconds",
    "Time from an event's occurrence to its delivery to the event store.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0, 3600.0),
    registry=REGISTRY,
)
