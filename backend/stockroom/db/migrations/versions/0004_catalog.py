"""catalog tables and indexes

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGRAM_COLUMNS = ("name", "sku", "description", "barcode")
SORT_INDEXES = {
    "ix_products_name_id": ["name", "id"],
    "ix_products_category_id_name_id": ["category_id", "name", "id"],
    "ix_products_sku_id": ["sku", "id"],
    "ix_products_created_at_id": ["created_at", "id"],
    "ix_products_sale_price_id": ["sale_price", "id"],
}


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in TRIGRAM_COLUMNS:
        op.create_index(
            f"ix_products_{column}_trgm",
            "products",
            [column],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )
    for name, columns in SORT_INDEXES.items():
        op.create_index(name, "products", columns, unique=False)
    # Superseded by ix_products_category_id_name_id, whose leading column serves the same lookups.
    op.drop_index("ix_products_category_id", table_name="products")


def downgrade() -> None:
    op.create_index("ix_products_category_id", "products", ["category_id"], unique=False)
    for name in SORT_INDEXES:
        op.drop_index(name, table_name="products")
    for column in TRIGRAM_COLUMNS:
        op.drop_index(f"ix_products_{column}_trgm", table_name="products")
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
