"""events: the outbox's per-entity order key and its index

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENTITY_KEY_SQL = "(payload -> 'entity' ->> 'type') || ':' || (payload -> 'entity' ->> 'id')"


def upgrade() -> None:
    op.add_column(
        "outbox_events",
        sa.Column("entity_key", sa.Text(), sa.Computed(ENTITY_KEY_SQL, persisted=True)),
    )
    op.create_index(
        "ix_outbox_events_pending_entity",
        "outbox_events",
        ["entity_key", "occurred_at", "id"],
        unique=False,
        postgresql_where=sa.text("delivered_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_events_pending_entity", table_name="outbox_events")
    op.drop_column("outbox_events", "entity_key")
