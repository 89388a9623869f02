"""Request and response bodies of the purchase order routes.

`unit_cost` and `total_cost` are present in the models; the router removes them for callers
without costs:read (`stockroom.redaction.without_costs`), in details, lists and replays alike.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from stockroom.http.params import UtcDateTime
from stockroom.purchasing.models import PurchaseOrderStatus
from stockroom.stock.order_schemas import (
    MAX_LINES,
    LineQuantity,
    distinct_lines,
    distinct_products,
)
from stockroom.stock.schemas import Note, Quantity, Reference
from stockroom.types import NOT_NULL, MoneyIn, MoneyStr

Number = Annotated[str, StringConstraints(max_length=20)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PurchaseOrderLineIn(_In):
    product_id: uuid.UUID
    quantity: Quantity
    unit_cost: MoneyIn | None = Field(
        default=None,
        description="defaults to the product's cost price; setting it needs costs:read",
    )


OrderLines = Annotated[
    list[PurchaseOrderLineIn],
    Field(min_length=1, max_length=MAX_LINES),
    AfterValidator(distinct_products),
]


class PurchaseOrderCreate(_In):
    supplier_id: uuid.UUID
    warehouse_id: uuid.UUID
    expected_at: UtcDateTime | None = None
    reference: Reference = None
    note: Note = None
    lines: OrderLines


class PurchaseOrderUpdate(_In):
    """Draft orders only. `lines`, when given, replaces every line."""

    supplier_id: Annotated[uuid.UUID | None, NOT_NULL] = None
    warehouse_id: Annotated[uuid.UUID | None, NOT_NULL] = None
    expected_at: UtcDateTime | None = None
    reference: Reference = None
    note: Note = None
    lines: Annotated[OrderLines | None, NOT_NULL] = None

    @field_validator("supplier_id", "warehouse_id", "lines")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value


class ReceiveRequest(_In):
    lines: Annotated[
        list[LineQuantity],
        Field(min_length=1, max_length=MAX_LINES),
        AfterValidator(distinct_lines),
    ]
    reference: Reference = None


class PurchaseOrderLineRead(_Out):
    id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    received_quantity: int
    unit_cost: MoneyStr | None = Field(default=None, description="only with costs:read")


class PurchaseOrderRead(_Out):
    id: uuid.UUID
    number: Number
    status: PurchaseOrderStatus
    supplier_id: uuid.UUID
    warehouse_id: uuid.UUID
    expected_at: datetime | None
    reference: str | None
    note: str | None
    lines: list[PurchaseOrderLineRead]
    total_cost: MoneyStr | None = Field(default=None, description="only with costs:read")
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    closed_at: datetime | None
    version: int


def total_cost(lines: list[PurchaseOrderLineRead]) -> Decimal:
    return sum((line.quantity * (line.unit_cost or Decimal(0)) for line in lines), Decimal("0.00"))


class ReorderSuggestion(_Out):
    product_id: uuid.UUID
    sku: str
    product_name: str
    warehouse_id: uuid.UUID
    warehouse_code: str
    supplier_id: uuid.UUID | None = Field(description="the product's supplier; null when none")
    on_hand: int
    reserved: int
    on_order: int
    reorder_point: int
    reorder_quantity: int
    suggested_quantity: int = Field(
        description="brings on_hand - reserved + on_order to reorder_point + reorder_quantity"
    )


class ReorderRequest(_In):
    warehouse_id: uuid.UUID | None = Field(default=None, description="only this warehouse")
    supplier_id: uuid.UUID | None = Field(default=None, description="only this supplier")


class ReorderResult(_Out):
    purchase_orders: list[PurchaseOrderRead] = Field(
        description="the draft orders created: one per supplier and warehouse"
    )
    skipped: list[ReorderSuggestion] = Field(
        description=(
            "suggestions for products without a supplier (supplier_id null) or whose supplier"
            " is inactive: no order was made for them"
        )
    )
