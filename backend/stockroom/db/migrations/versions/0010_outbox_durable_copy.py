"""events: remember which outbox rows a durable event store holds

Revision ID: 0010
Revises: 0007

The relay pruned delivered outbox rows after OUTBOX_RETENTION_DAYS whatever the event store was,
so with the in-process store (the embedded default) a restart after a month forgot the older
events. `stored_durably` is true once MongoDB holds the event (delivered to it, or replayed into
it); only such rows are pruned, so the outbox keeps every event the in-process store holds, and
rows delivered to an in-process store stay until `stockroom events replay` has copied them into
MongoDB. Existing rows start false: nothing is pruned that no durable store is known to hold.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "outbox_events",
        sa.Column("stored_durably", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.drop_index("ix_outbox_events_delivered_at", table_name="outbox_events")
    op.create_index(
        "ix_outbox_events_prunable",
        "outbox_events",
        ["delivered_at"],
        unique=False,
        postgresql_where=sa.text("stored_durably"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_events_prunable", table_name="outbox_events")
    op.create_index(
        "ix_outbox_events_delivered_at",
        "outbox_events",
        ["delivered_at"],
        unique=False,
        postgresql_where=sa.text("delivered_at IS NOT NULL"),
    )
    op.drop_column("outbox_events", "stored_durably")
