"""purchasing and sales orders, reservations and on-order quantities

Revision ID: 0011
Revises: 0006

New permissions purchasing:read/write and sales:read/write, granted to the seeded roles as the
contract's table says (custom roles are left as their owners set them); purchase and sales
orders with their lines and number sequences; `reserved` and `on_order` on every stock level;
the order a receipt or shipment movement belongs to.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies (a migration keeps meaning what it meant when written).
PERMISSIONS = {
    "purchasing:read": "view purchase orders and reorder suggestions",
    "purchasing:write": "create, submit, receive and cancel purchase orders",
    "sales:read": "view sales orders",
    "sales:write": "create, confirm, ship and cancel sales orders",
}
GRANTS = {
    "admin": ["purchasing:read", "purchasing:write", "sales:read", "sales:write"],
    "manager": ["purchasing:read", "purchasing:write", "sales:read", "sales:write"],
    "staff": ["purchasing:read", "sales:read", "sales:write"],
    "analyst": ["purchasing:read", "sales:read"],
}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _timestamps() -> list[sa.Column[object]]:
    return [
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
    ]


def upgrade() -> None:
    # Literal SQL from the constants above, so that `stockroom migrate --sql` can print it.
    values = ", ".join(f"({_quote(k)}, {_quote(v)})" for k, v in PERMISSIONS.items())
    op.execute(f"INSERT INTO permissions (name, description) VALUES {values}")
    for role, granted in GRANTS.items():
        names = ", ".join(_quote(p) for p in granted)
        op.execute(
            "INSERT INTO role_permissions (role_id, permission) "
            "SELECT r.id, p.name FROM roles r, permissions p "
            f"WHERE r.name = {_quote(role)} AND r.is_system AND p.name IN ({names}) "
            "ON CONFLICT DO NOTHING"
        )

    op.add_column(
        "stock_levels", sa.Column("reserved", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "stock_levels", sa.Column("on_order", sa.Integer(), server_default="0", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_stock_levels_reserved_not_negative"), "stock_levels", "reserved >= 0"
    )
    op.create_check_constraint(
        op.f("ck_stock_levels_on_order_not_negative"), "stock_levels", "on_order >= 0"
    )

    op.execute("CREATE SEQUENCE purchase_order_number_seq")
    op.execute("CREATE SEQUENCE sales_order_number_seq")

    op.create_table(
        "purchase_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("supplier_id", sa.Uuid(), nullable=False),
        sa.Column("warehouse_id", sa.Uuid(), nullable=False),
        sa.Column("expected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('draft', 'ordered', 'partially_received', 'received', 'cancelled', "
            "'closed')",
            name=op.f("ck_purchase_orders_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.id"],
            name=op.f("fk_purchase_orders_supplier_id_suppliers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["warehouse_id"],
            ["warehouses.id"],
            name=op.f("fk_purchase_orders_warehouse_id_warehouses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_purchase_orders_created_by_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_orders")),
        sa.UniqueConstraint("number", name=op.f("uq_purchase_orders_number")),
    )
    op.create_index(op.f("ix_purchase_orders_supplier_id"), "purchase_orders", ["supplier_id"])
    op.create_index(op.f("ix_purchase_orders_warehouse_id"), "purchase_orders", ["warehouse_id"])
    op.create_index("ix_purchase_orders_created_at_id", "purchase_orders", ["created_at", "id"])
    op.create_index(
        "ix_purchase_orders_status_created_at", "purchase_orders", ["status", "created_at"]
    )
    op.create_table(
        "purchase_order_lines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("purchase_order_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("received_quantity", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unit_cost", sa.Numeric(12, 2), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_purchase_order_lines_quantity_positive")),
        sa.CheckConstraint(
            "received_quantity >= 0 AND received_quantity <= quantity",
            name=op.f("ck_purchase_order_lines_received_within_quantity"),
        ),
        sa.CheckConstraint(
            "unit_cost >= 0", name=op.f("ck_purchase_order_lines_unit_cost_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_order_id"],
            ["purchase_orders.id"],
            name=op.f("fk_purchase_order_lines_purchase_order_id_purchase_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_purchase_order_lines_product_id_products"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_order_lines")),
        sa.UniqueConstraint(
            "purchase_order_id",
            "product_id",
            name=op.f("uq_purchase_order_lines_purchase_order_id_product_id"),
        ),
    )
    op.create_index(
        op.f("ix_purchase_order_lines_product_id"), "purchase_order_lines", ["product_id"]
    )

    op.create_table(
        "sales_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("warehouse_id", sa.Uuid(), nullable=False),
        sa.Column("customer_name", sa.String(length=200), nullable=False),
        sa.Column("customer_email", sa.String(length=320), nullable=True),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('draft', 'confirmed', 'partially_shipped', 'shipped', 'cancelled')",
            name=op.f("ck_sales_orders_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["warehouse_id"],
            ["warehouses.id"],
            name=op.f("fk_sales_orders_warehouse_id_warehouses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_sales_orders_created_by_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales_orders")),
        sa.UniqueConstraint("number", name=op.f("uq_sales_orders_number")),
    )
    op.create_index(op.f("ix_sales_orders_warehouse_id"), "sales_orders", ["warehouse_id"])
    op.create_index("ix_sales_orders_created_at_id", "sales_orders", ["created_at", "id"])
    op.create_index("ix_sales_orders_status_created_at", "sales_orders", ["status", "created_at"])
    op.create_table(
        "sales_order_lines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sales_order_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("reserved_quantity", sa.Integer(), server_default="0", nullable=False),
        sa.Column("shipped_quantity", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unit_price", sa.Numeric(12, 2), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_sales_order_lines_quantity_positive")),
        sa.CheckConstraint(
            "reserved_quantity >= 0", name=op.f("ck_sales_order_lines_reserved_not_negative")
        ),
        sa.CheckConstraint(
            "shipped_quantity >= 0", name=op.f("ck_sales_order_lines_shipped_not_negative")
        ),
        sa.CheckConstraint(
            "reserved_quantity + shipped_quantity <= quantity",
            name=op.f("ck_sales_order_lines_reserved_and_shipped_within"),
        ),
        sa.CheckConstraint(
            "unit_price >= 0", name=op.f("ck_sales_order_lines_unit_price_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["sales_order_id"],
            ["sales_orders.id"],
            name=op.f("fk_sales_order_lines_sales_order_id_sales_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_sales_order_lines_product_id_products"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales_order_lines")),
        sa.UniqueConstraint(
            "sales_order_id",
            "product_id",
            name=op.f("uq_sales_order_lines_sales_order_id_product_id"),
        ),
    )
    op.create_index(op.f("ix_sales_order_lines_product_id"), "sales_order_lines", ["product_id"])

    op.add_column("stock_movements", sa.Column("purchase_order_id", sa.Uuid(), nullable=True))
    op.add_column("stock_movements", sa.Column("sales_order_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_stock_movements_purchase_order_id_purchase_orders"),
        "stock_movements",
        "purchase_orders",
        ["purchase_order_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_foreign_key(
        op.f("fk_stock_movements_sales_order_id_sales_orders"),
        "stock_movements",
        "sales_orders",
        ["sales_order_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_index(
        "ix_stock_movements_purchase_order_id",
        "stock_movements",
        ["purchase_order_id"],
        postgresql_where=sa.text("purchase_order_id IS NOT NULL"),
    )
    op.create_index(
        "ix_stock_movements_sales_order_id",
        "stock_movements",
        ["sales_order_id"],
        postgresql_where=sa.text("sales_order_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_stock_movements_sales_order_id", table_name="stock_movements")
    op.drop_index("ix_stock_movements_purchase_order_id", table_name="stock_movements")
    op.drop_constraint(
        op.f("fk_stock_movements_sales_order_id_sales_orders"),
        "stock_movements",
        type_="foreignkey",
    )
    op.drop_constraint(
        op.f("fk_stock_movements_purchase_order_id_purchase_orders"),
        "stock_movements",
        type_="foreignkey",
    )
    # The ledger's append-only trigger refuses UPDATE, not ALTER: dropping columns is allowed.
    op.drop_column("stock_movements", "sales_order_id")
    op.drop_column("stock_movements", "purchase_order_id")
    op.drop_table("sales_order_lines")
    op.drop_table("sales_orders")
    op.drop_table("purchase_order_lines")
    op.drop_table("purchase_orders")
    op.execute("DROP SEQUENCE IF EXISTS sales_order_number_seq")
    op.execute("DROP SEQUENCE IF EXISTS purchase_order_number_seq")
    op.drop_constraint(op.f("ck_stock_levels_on_order_not_negative"), "stock_levels", type_="check")
    op.drop_constraint(op.f("ck_stock_levels_reserved_not_negative"), "stock_levels", type_="check")
    op.drop_column("stock_levels", "on_order")
    op.drop_column("stock_levels", "reserved")
    names = ", ".join(_quote(p) for p in PERMISSIONS)
    op.execute(f"DELETE FROM role_permissions WHERE permission IN ({names})")
    op.execute(f"DELETE FROM permissions WHERE name IN ({names})")
