"""webhooks: endpoints, deliveries, attempts; deliveries fanned out from the outbox by a trigger

Revision ID: 0009
Revises: 0010

`webhook_fan_out`, a statement-level trigger on `outbox_events`, creates one delivery per new
event and matching active endpoint in the transaction that records the event, whoever inserts the
outbox rows and however (ORM, Core, or SQL inside a posting statement). A rolled-back event has
no delivery; a committed one has exactly one per endpoint (unique on endpoint and event).
`webhook.test` events go to the endpoint they name only.

Also adds the `webhooks:manage` permission, granted to the seeded `admin` role only (contract,
"Roles and permissions"); custom roles are left as their owners set them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: a migration means what it meant when written.
PERMISSION = ("webhooks:manage", "manage webhook endpoints and their deliveries")

EVENT_MATCHES = """
CREATE FUNCTION webhook_event_matches(patterns text[], event_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- An exact type, or a prefix ending in '*' ('stock.*'; '*' alone matches every type).
    -- starts_with, not LIKE: '_' in event types is not a wildcard.
    SELECT EXISTS (
        SELECT 1 FROM unnest(patterns) AS p
        WHERE p = event_type OR (right(p, 1) = '*' AND starts_with(event_type, left(p, -1)))
    )
$$
"""

FAN_OUT = """
CREATE FUNCTION webhook_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Most installations have no endpoint: one index-only probe, no join.
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload)
    SELECT uuidv7(), e.id, n.id, n.type, n.payload
    FROM new_events AS n
    JOIN webhook_endpoints AS e ON CASE
        WHEN n.type = 'webhook.test' THEN e.id::text = n.payload -> 'entity' ->> 'id'
        ELSE e.is_active AND webhook_event_matches(e.event_types, n.type)
    END
    ON CONFLICT (endpoint_id, event_id) DO NOTHING;
    RETURN NULL;
END
$$
"""

FAN_OUT_TRIGGER = """
CREATE TRIGGER webhook_fan_out AFTER INSERT ON outbox_events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION webhook_fan_out()
"""


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_types", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("include_costs", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "cardinality(event_types) > 0",
            name=op.f("ck_webhook_endpoints_event_types_not_empty"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=True,
        ),
        sa.Column("lease_id", sa.Uuid(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')",
            name=op.f("ck_webhook_deliveries_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "endpoint_id", "event_id", name=op.f("uq_webhook_deliveries_endpoint_id_event_id")
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_id_created_at",
        "webhook_deliveries",
        ["endpoint_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(
        op.f("ix_webhook_attempts_delivery_id"), "webhook_attempts", ["delivery_id"], unique=False
    )
    op.execute(EVENT_MATCHES)
    op.execute(FAN_OUT)
    op.execute(FAN_OUT_TRIGGER)
    name, description = PERMISSION
    op.execute(f"INSERT INTO permissions (name, description) VALUES ('{name}', '{description}')")
    op.execute(
        "INSERT INTO role_permissions (role_id, permission) "
        f"SELECT id, '{name}' FROM roles WHERE name = 'admin' AND is_system"
    )


def downgrade() -> None:
    name, _ = PERMISSION
    op.execute(f"DELETE FROM role_permissions WHERE permission = '{name}'")
    op.execute(f"DELETE FROM permissions WHERE name = '{name}'")
    op.execute("DROP TRIGGER webhook_fan_out ON outbox_events")
    op.execute("DROP FUNCTION webhook_fan_out()")
    op.execute("DROP FUNCTION webhook_event_matches(text[], text)")
    op.drop_index(op.f("ix_webhook_attempts_delivery_id"), table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_deliveries_endpoint_id_created_at", table_name="webhook_deliveries")
    op.drop_index(
        "ix_webhook_deliveries_due",
        table_name="webhook_deliveries",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
