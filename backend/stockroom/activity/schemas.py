"""Request and response models of the activity log and the dashboards."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from stockroom.activity.cursor import CURSOR_PATTERN


class ExportFormat(StrEnum):
    NDJSON = "ndjson"
    CSV = "csv"


class Bucket(StrEnum):
    HOUR = "hour"
    DAY = "day"


class EventActor(BaseModel):
    id: str
    email: str | None = None


class EventEntity(BaseModel):
    type: str
    id: str


class EventRequest(BaseModel):
    id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    method: str | None = None
    path: str | None = None


class ActivityEvent(BaseModel):
    """One activity event, as stored in the event store."""

    id: str = Field(examples=["01936f4e-8a2b-7c3d-9e4f-0a1b2c3d4e5f"])
    type: str = Field(examples=["stock.movement_posted"])
    occurred_at: datetime
    actor: EventActor | None = None
    entity: EventEntity | None = None
    request: EventRequest | None = None
    changes: dict[str, Any] | None = Field(
        default=None, examples=[{"name": {"old": "Bolt", "new": "Hex bolt"}}]
    )
    data: dict[str, Any] | None = None


class ActivityPage(BaseModel):
    """A page of events, newest first; pass `next_cursor` back as `cursor` for the next one."""

    items: list[ActivityEvent]
    next_cursor: str | None = Field(
        default=None,
        description="null on the last page; opaque, valid only for the same filters",
        json_schema_extra={"pattern": CURSOR_PATTERN},
    )


class DashboardSummary(BaseModel):
    events_today: int = Field(description="events since 00:00 UTC today")
    active_users_7d: int = Field(description="distinct actors in the last 7 x 24 hours")
    movements_today: int = Field(description="`stock.movement_posted` events since 00:00 UTC")
    failed_logins_24h: int = Field(description="`auth.login_failed` events in the last 24 hours")
    low_stock_products: int = Field(description="products at or below their reorder point")
    open_transfers: int = Field(description="transfers still in transit")
    open_purchase_orders: int = Field(
        description="purchase orders `ordered` or `partially_received` (drafts are not open)"
    )
    open_sales_orders: int = Field(
        description="sales orders `confirmed` or `partially_shipped` (drafts reserve nothing)"
    )


class ActivityBucket(BaseModel):
    bucket_start: datetime = Field(description="start of the UTC hour or day")
    type: str
    count: int


class StockFlowBucket(BaseModel):
    bucket_start: datetime = Field(description="start of the UTC hour or day")
    warehouse_id: str
    warehouse_code: str | None = Field(
        description="the warehouse's code (null if the warehouse was deleted since)"
    )
    units_in: int
    units_out: int


class TopActor(BaseModel):
    actor_id: str
    email: str | None = Field(description="the email on the actor's most recent event")
    events: int


@dataclass(frozen=True, slots=True)
class EventFilter:
    """The filters of `GET /activity` and of exports. `occurred_from` is inclusive,
    `occurred_to` exclusive."""

    type: str | None = None
    actor_id: uuid.UUID | None = None
    entity_type: str | None = None
    entity_id: uuid.UUID | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None

    @property
    def type_prefix(self) -> str | None:
        """`stock.` for `stock.*`; None for an exact type or no type filter."""
        if self.type is not None and self.type.endswith("*"):
            return self.type[:-1]
        return None

    def digest(self) -> str:
        """A short, stable fingerprint of the filters, bound into cursors."""
        canonical = json.dumps(
            [
                self.type,
                str(self.actor_id) if self.actor_id else None,
                self.entity_type,
                str(self.entity_id) if self.entity_id else None,
                _millis(self.occurred_from),
                _millis(self.occurred_to),
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _millis(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)
