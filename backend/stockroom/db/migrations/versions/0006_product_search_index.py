"""one trigram index over the four searched product columns

Revision ID: 0006
Revises: 0005

The product search (`q`: a case-insensitive substring of name, sku, description or barcode)
was served by four trigram GIN indexes combined by a BitmapOr. One GIN index over the four
columns joined by chr(31) serves it with one bitmap scan and costs an insert one GIN index to
maintain instead of four (see docs/benchmarks.md, Catalog).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGRAM_COLUMNS = ("name", "sku", "description", "barcode")
# Frozen here (not imported from the models): a migration describes the schema of its revision.
SEARCH_TEXT = (
    "(((((name || chr(31)) || sku) || chr(31)) || coalesce(description, '')) || chr(31)) "
    "|| coalesce(barcode, '')"
)


def upgrade() -> None:
    op.create_index(
        "ix_products_search_trgm",
        "products",
        [sa.literal_column(f"({SEARCH_TEXT})").label("search_text")],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
    )
    for column in TRIGRAM_COLUMNS:
        op.drop_index(f"ix_products_{column}_trgm", table_name="products")


def downgrade() -> None:
    for column in TRIGRAM_COLUMNS:
        op.create_index(
            f"ix_products_{column}_trgm",
            "products",
            [column],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )
    op.drop_index("ix_products_search_trgm", table_name="products")
