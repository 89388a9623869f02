"""Sessions end when they should: users.sessions_valid_after.

An access token issued before this moment no longer authenticates its user. It is set when the
password changes (by the user or an administrator) and when the user is deactivated or
reactivated, so a reactivated user's old tokens stay dead.

Revision ID: 0007
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("sessions_valid_after", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("users", "sessions_valid_after")
