"""Sales order tables.

Per line, `reserved_quantity + shipped_quantity <= quantity`: a confirmed line reserves what is
not shipped yet, a shipment moves units from reserved to shipped, a cancellation releases what
is reserved. The sum of `reserved_quantity` per product and warehouse is mirrored in
`stock_levels.reserved`, changed in the same statement.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stockroom.db.base import Base, Timestamps, UUIDPrimaryKey


class SalesOrderStatus(StrEnum):
    DRAFT = "draft"
    CONFIRMED = "confirmed"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


OPEN_SALES_STATUSES = (SalesOrderStatus.CONFIRMED, SalesOrderStatus.PARTIALLY_SHIPPED)

SALES_ORDER_NUMBERS = "sales_order_number_seq"


def _sql_list(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class SalesOrder(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "sales_orders"
    __table_args__ = (
        CheckConstraint(f"status IN ({_sql_list(SalesOrderStatus)})", "status_known"),
        Index("ix_sales_orders_created_at_id", "created_at", "id"),
        Index("ix_sales_orders_status_created_at", "status", "created_at"),
    )

    number: Mapped[str] = mapped_column(String(20), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=SalesOrderStatus.DRAFT.value)
    warehouse_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("warehouses.id", ondelete="RESTRICT"), index=True
    )
    customer_name: Mapped[str] = mapped_column(String(200))
    customer_email: Mapped[str | None] = mapped_column(String(320))
    reference: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT")
    )
    confirmed_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class SalesOrderLine(UUIDPrimaryKey, Base):
    __tablename__ = "sales_order_lines"
    __table_args__ = (
        UniqueConstraint("sales_order_id", "product_id"),
        CheckConstraint("quantity > 0", "quantity_positive"),
        CheckConstraint("reserved_quantity >= 0", "reserved_not_negative"),
        CheckConstraint("shipped_quantity >= 0", "shipped_not_negative"),
        CheckConstraint(
            "reserved_quantity + shipped_quantity <= quantity", "reserved_and_shipped_within"
        ),
        CheckConstraint("unit_price >= 0", "unit_price_not_negative"),
    )

    sales_order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sales_orders.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column()
    product_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("products.id", ondelete="RESTRICT"), index=True
    )
    quantity: Mapped[int] = mapped_column()
    reserved_quantity: Mapped[int] = mapped_column(default=0, server_default="0")
    shipped_quantity: Mapped[int] = mapped_column(default=0, server_default="0")
    unit_price: Mapped[Decimal] = mapped_column()
