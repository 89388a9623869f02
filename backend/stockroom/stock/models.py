"""Stock tables.

`stock_movements` is the immutable ledger (a trigger rejects UPDATE, DELETE and TRUNCATE).
`stock_levels` is a projection of the ledger, kept in the same transaction as every movement.
Transfers and counts are the two workflows that post system movements.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from stockroom.db.base import Base, UUIDPrimaryKey
from stockroom.types import utcnow


class MovementType(StrEnum):
    RECEIPT = "receipt"
    RETURN = "return"
    SALE = "sale"
    DAMAGE = "damage"
    ADJUSTMENT = "adjustment"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    COUNT = "count"


class TransferStatus(StrEnum):
    IN_TRANSIT = "in_transit"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class CountStatus(StrEnum):
    APPLIED = "applied"
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    REJECTED = "rejected"


def _sql_list(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class StockLevel(Base):
    __tablename__ = "stock_levels"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", "on_hand_not_negative"),
        CheckConstraint("in_transit_out >= 0", "in_transit_out_not_negative"),
        # `reserved` may exceed on hand after a damage or count (the level is then over
        # reserved, for someone to fix), never go below zero.
        CheckConstraint("reserved >= 0", "reserved_not_negative"),
        CheckConstraint("on_order >= 0", "on_order_not_negative"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("products.id", ondelete="RESTRICT"), primary_key=True
    )
    warehouse_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("warehouses.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    on_hand: Mapped[int] = mapped_column(default=0, server_default="0")
    in_transit_out: Mapped[int] = mapped_column(default=0, server_default="0")
    # Unshipped quantities of confirmed sales orders; `available` is on_hand - reserved.
    reserved: Mapped[int] = mapped_column(default=0, server_default="0")
    # Outstanding quantities of ordered and partially received purchase orders.
    on_order: Mapped[int] = mapped_column(default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(
        server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class StockTransfer(UUIDPrimaryKey, Base):
    __tablename__ = "stock_transfers"
    __table_args__ = (
        CheckConstraint("quantity > 0", "quantity_positive"),
        CheckConstraint("from_warehouse_id <> to_warehouse_id", "distinct_warehouses"),
        CheckConstraint(f"status IN ({_sql_list(TransferStatus)})", "status_known"),
        # Open transfers are few and read often (dashboard, `stockroom stock check`).
        Index(
            "ix_stock_transfers_open",
            "product_id",
            "from_warehouse_id",
            postgresql_where=text("status = 'in_transit'"),
        ),
        Index("ix_stock_transfers_created_at_id", "created_at", "id"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("products.id", ondelete="RESTRICT"), index=True
    )
    from_warehouse_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("warehouses.id", ondelete="RESTRICT"), index=True
    )
    to_warehouse_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("warehouses.id", ondelete="RESTRICT"), index=True
    )
    quantity: Mapped[int] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default=TransferStatus.IN_TRANSIT.value)
    reference: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
    closed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    closed_at: Mapped[datetime | None] = mapped_column()


class StockMovement(UUIDPrimaryKey, Base):
    __tablename__ = "stock_movements"
    __table_args__ = (
        CheckConstraint(f"type IN ({_sql_list(MovementType)})", "type_known"),
        CheckConstraint("signed_quantity <> 0", "quantity_not_zero"),
        # The sign is part of the type (adjustment and count are signed either way).
        CheckConstraint(
            "(type IN ('receipt', 'return', 'transfer_in') AND signed_quantity > 0)"
            " OR (type IN ('sale', 'damage', 'transfer_out') AND signed_quantity < 0)"
            " OR type IN ('adjustment', 'count')",
            "sign_matches_type",
        ),
        CheckConstraint("on_hand_after >= 0", "on_hand_after_not_negative"),
        Index("ix_stock_movements_created_at_id", "created_at", "id"),
        Index("ix_stock_movements_product_id_created_at", "product_id", "created_at"),
        Index("ix_stock_movements_warehouse_id_created_at", "warehouse_id", "created_at"),
        Index("ix_stock_movements_type_created_at", "type", "created_at"),
        Index(
            "ix_stock_movements_reference",
            "reference",
            postgresql_where=text("reference IS NOT NULL"),
        ),
        # A movement is reversed at most once, whatever the concurrency.
        Index(
            "uq_stock_movements_reverses_id",
            "reverses_id",
            unique=True,
            postgresql_where=text("reverses_id IS NOT NULL"),
        ),
        Index(
            "ix_stock_movements_transfer_id",
            "transfer_id",
            postgresql_where=text("transfer_id IS NOT NULL"),
        ),
        Index(
            "ix_stock_movements_purchase_order_id",
            "purchase_order_id",
            postgresql_where=text("purchase_order_id IS NOT NULL"),
        ),
        Index(
            "ix_stock_movements_sales_order_id",
            "sales_order_id",
            postgresql_where=text("sales_order_id IS NOT NULL"),
        ),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    warehouse_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("warehouses.id", ondelete="RESTRICT")
    )
    type: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[int] = mapped_column()
    signed_quantity: Mapped[int] = mapped_column()
    on_hand_after: Mapped[int] = mapped_column()
    unit_cost: Mapped[Decimal | None] = mapped_column()
    unit_price: Mapped[Decimal | None] = mapped_column()
    reference: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    reverses_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("stock_movements.id", ondelete="RESTRICT")
    )
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("stock_transfers.id", ondelete="RESTRICT")
    )
    # The receipt of a purchase order, the shipment of a sales order.
    purchase_order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("purchase_orders.id", ondelete="RESTRICT")
    )
    sales_order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sales_orders.id", ondelete="RESTRICT")
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT")
    )
    request_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)


class StockCount(UUIDPrimaryKey, Base):
    __tablename__ = "stock_counts"
    __table_args__ = (
        CheckConstraint("counted >= 0", "counted_not_negative"),
        CheckConstraint(f"status IN ({_sql_list(CountStatus)})", "status_known"),
        Index(
            "ix_stock_counts_pending",
            "created_at",
            postgresql_where=text("status = 'pending_review'"),
        ),
        Index("ix_stock_counts_created_at_id", "created_at", "id"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("products.id", ondelete="RESTRICT"), index=True
    )
    warehouse_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("warehouses.id", ondelete="RESTRICT")
    )
    expected: Mapped[int] = mapped_column()
    counted: Mapped[int] = mapped_column()
    variance: Mapped[int] = mapped_column()
    status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    movement_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("stock_movements.id", ondelete="RESTRICT")
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT")
    )
    reviewed_at: Mapped[datetime | None] = mapped_column()
