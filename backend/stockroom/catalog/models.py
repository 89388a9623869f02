"""Catalog tables."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from stockroom.db.base import Base, Timestamps, UUIDPrimaryKey

# The four searched columns joined by the unit separator, chr(31): a search string without it
# matches this text exactly where it matches one of the columns (see catalog.repository).
# Parenthesised as PostgreSQL renders it back, so that autogenerate compares it as equal.
SEARCH_SEPARATOR = chr(31)
SEARCH_TEXT = (
    "(((((name || chr(31)) || sku) || chr(31)) || coalesce(description, '')) || chr(31)) "
    "|| coalesce(barcode, '')"
)


class Category(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "categories"
    __table_args__ = (
        # NULLS NOT DISTINCT: two root categories cannot share a name either (PostgreSQL 15+).
        UniqueConstraint("parent_id", "name", postgresql_nulls_not_distinct=True),
    )

    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("categories.id", ondelete="RESTRICT"), index=True
    )
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Supplier(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "suppliers"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    address: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    # An inactive supplier keeps its history but takes no new purchase orders (purchasing).
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Warehouse(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "warehouses"

    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Product(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "products"
    __table_args__ = (
        Index("uq_products_sku_lower", text("lower(sku)"), unique=True),
        CheckConstraint("sale_price > 0", "sale_price_positive"),
        CheckConstraint("cost_price >= 0", "cost_price_not_negative"),
        CheckConstraint("cost_price <= sale_price", "cost_not_above_sale"),
        CheckConstraint("reorder_point >= 0", "reorder_point_not_negative"),
        CheckConstraint("reorder_quantity >= 0", "reorder_quantity_not_negative"),
        # `q` is a case-insensitive substring search (ILIKE '%q%') over four columns: one trigram
        # GIN index over them joined by a separator serves it (one index to maintain per insert,
        # one bitmap scan per search; the trigrams of the parts are the trigrams of the whole).
        Index(
            "ix_products_search_trgm",
            literal_column(f"({SEARCH_TEXT})").label("search_text"),
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ),
        # Keyset-friendly sort orders with the id tiebreak, so a page is an index range scan.
        Index("ix_products_name_id", "name", "id"),
        # A category page is picked from this index alone (index-only scan), then joined back.
        Index("ix_products_category_id_name_id", "category_id", "name", "id"),
        Index("ix_products_sku_id", "sku", "id"),
        Index("ix_products_created_at_id", "created_at", "id"),
        Index("ix_products_sale_price_id", "sale_price", "id"),
    )

    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    # Indexed by ix_products_category_id_name_id (its leading column serves the foreign key).
    category_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("categories.id", ondelete="RESTRICT")
    )
    supplier_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("suppliers.id", ondelete="RESTRICT"), index=True
    )
    unit: Mapped[str] = mapped_column(String(20), default="each", server_default="each")
    barcode: Mapped[str | None] = mapped_column(String(64), unique=True)
    cost_price: Mapped[Decimal] = mapped_column(default=Decimal("0.00"), server_default="0")
    sale_price: Mapped[Decimal] = mapped_column()
    reorder_point: Mapped[int] = mapped_column(default=0, server_default="0")
    reorder_quantity: Mapped[int] = mapped_column(default=0, server_default="0")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012
