"""suppliers.is_active: a supplier no longer dealt with

Revision ID: 0012
Revises: 0014

Every existing supplier stays active. An inactive supplier keeps its history (its orders,
its products' links) but takes no new or changed purchase orders, and reorder suggestions
make no orders for it (docs/orders.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "suppliers",
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("suppliers", "is_active")
