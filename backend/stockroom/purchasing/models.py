"""Purchase order tables.

`received_quantity` only grows, and never beyond `quantity` (a CHECK, besides the conditional
UPDATE that refuses an over-receipt). The open quantity of `ordered` and `partially_received`
orders is mirrored in `stock_levels.on_order`, changed in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stockroom.db.base import Base, Timestamps, UUIDPrimaryKey


class PurchaseOrderStatus(StrEnum):
    DRAFT = "draft"
    ORDERED = "ordered"
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"
    CANCELLED = "cancelled"
    CLOSED = "closed"


# The statuses whose outstanding quantities are on order (and counted in stock_levels.on_order).
OPEN_PURCHASE_STATUSES = (PurchaseOrderStatus.ORDERED, PurchaseOrderStatus.PARTIALLY_RECEIVED)

PURCHASE_ORDER_NUMBERS = "purchase_order_number_seq"


def _sql_list(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class PurchaseOrder(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "purchase_orders"
    __table_args__ = (
        CheckConstraint(f"status IN ({_sql_list(PurchaseOrderStatus)})", "status_known"),
        Index("ix_purchase_orders_created_at_id", "created_at", "id"),
        Index("ix_purchase_orders_status_created_at", "status", "created_at"),
    )

    number: Mapped[str] = mapped_column(String(20), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=PurchaseOrderStatus.DRAFT.value)
    supplier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("suppliers.id", ondelete="RESTRICT"), index=True
    )
    warehouse_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("warehouses.id", ondelete="RESTRICT"), index=True
    )
    expected_at: Mapped[datetime | None] = mapped_column()
    reference: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT")
    )
    submitted_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class PurchaseOrderLine(UUIDPrimaryKey, Base):
    __tablename__ = "purchase_order_lines"
    __table_args__ = (
        UniqueConstraint("purchase_order_id", "product_id"),
        CheckConstraint("quantity > 0", "quantity_positive"),
        CheckConstraint(
            "received_quantity >= 0 AND received_quantity <= quantity", "received_within_quantity"
        ),
        CheckConstraint("unit_cost >= 0", "unit_cost_not_negative"),
    )

    purchase_order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("purchase_orders.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column()
    product_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("products.id", ondelete="RESTRICT"), index=True
    )
    quantity: Mapped[int] = mapped_column()
    received_quantity: Mapped[int] = mapped_column(default=0, server_default="0")
    unit_cost: Mapped[Decimal] = mapped_column()
