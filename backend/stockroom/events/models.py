"""The transactional outbox: events written in the same transaction as the change they describe."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Computed, Index, String, Text, false, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from stockroom.db.base import Base

ENTITY_KEY_SQL = "(payload -> 'entity' ->> 'type') || ':' || (payload -> 'entity' ->> 'id')"


class OutboxEvent(Base):
    __tablename__ = "outbox_events"
    __table_args__ = (
        # Claiming walks only undelivered rows in delivery order: O(batch), not O(table).
        Index(
            "ix_outbox_events_pending",
            "occurred_at",
            "id",
            postgresql_where=text("delivered_at IS NULL"),
        ),
        # The relay's per-entity order gate: "is an earlier event of this entity still pending?"
        # is one index probe per claimed row.
        Index(
            "ix_outbox_events_pending_entity",
            "entity_key",
            "occurred_at",
            "id",
            postgresql_where=text("delivered_at IS NULL"),
        ),
        # Pruning walks only the rows a durable store holds, by age of delivery.
        Index(
            "ix_outbox_events_prunable",
            "delivered_at",
            postgresql_where=text("stored_durably"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    # True once MongoDB holds the event (delivered to it, or replayed into it). Only such rows are
    # pruned after OUTBOX_RETENTION_DAYS: for an in-process store the outbox is the only durable
    # copy, and a store switched to MongoDB has not seen the rows delivered before the switch.
    stored_durably: Mapped[bool] = mapped_column(default=False, server_default=false())
    # `type:id` of the event's entity, derived by PostgreSQL from the payload so that no writer
    # can get it wrong; NULL for events without an entity.
    entity_key: Mapped[str | None] = mapped_column(Text, Computed(ENTITY_KEY_SQL, persisted=True))
