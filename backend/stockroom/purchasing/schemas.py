"""Request and response bodies of the purchase order routes.

`unit_cost` and `total_cost` are present in the models; the router removes them for callers
without costs:read (`without_costs`), in details, lists and replays alike.
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
from stockroom.stock.schemas import MoneyIn, MoneyStr, Note, Quantity, Reference

MAX_LINES = 500
Number = Annotated[str, StringConstraints(max_length=20)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def distinct_products(lines: list[Any]) -> list[Any]:
    """A product at most once per order (its lines are per product)."""
    seen: set[uuid.UUID] = set()
    for line in lines:
        if line.product_id in seen:
            raise ValueError(f"product {line.product_id} appears on more than one line")
        seen.add(line.product_id)
    return lines


def distinct_lines(lines: list[Any]) -> list[Any]:
    """A line at most once per receipt or shipment."""
    seen: set[uuid.UUID] = set()
    for line in lines:
        if line.line_id in seen:
            raise ValueError(f"line {line.line_id} appears more than once")
        seen.add(line.line_id)
    return lines


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

    supplier_id: uuid.UUID | None = None
    warehouse_id: uuid.UUID | None = None
    expected_at: UtcDateTime | None = None
    reference: Reference = None
    note: Note = None
    lines: OrderLines | None = None

    @field_validator("supplier_id", "warehouse_id", "lines")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value


class ReceiptLine(_In):
    line_id: uuid.UUID
    quantity: Quantity


class ReceiveRequest(_In):
    lines: Annotated[
        list[ReceiptLine],
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


def without_costs(body: Any) -> Any:
    """An order's JSON body (or a page of them) without its cost fields."""
    if isinstance(body, dict):
        if "items" in body:
            return {**body, "items": [without_costs(item) for item in body["items"]]}
        body = {k: v for k, v in body.items() if k != "total_cost"}
        if isinstance(body.get("lines"), list):
            body["lines"] = [
                {k: v for k, v in line.items() if k != "unit_cost"} for line in body["lines"]
            ]
    return body
