"""Webhook metrics, on `/metrics` with the others (same registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from stockroom.http.metrics import REGISTRY

DELIVERY_ATTEMPTS = Counter(
    "stockroom_webhook_attempts",
    "Webhook delivery attempts made by this process, by outcome: succeeded (2xx), retrying "
    "(failed, another attempt is scheduled), failed (failed, no attempt left).",
    ["outcome"],
    registry=REGISTRY,
)
DELIVERY_BACKLOG = Gauge(
    "stockroom_webhook_backlog",
    "Webhook deliveries pending (due now or waiting for a retry).",
    registry=REGISTRY,
)
DELIVERY_OLDEST_AGE = Gauge(
    "stockroom_webhook_oldest_pending_age_seconds",
    "Age of the oldest pending webhook delivery (0 when none is pending).",
    registry=REGISTRY,
)
ENDPOINTS_DISABLED = Counter(
    "stockroom_webhook_endpoints_disabled",
    "Endpoints disabled by this process (410 Gone, or 5 days of failures).",
    registry=REGISTRY,
)
