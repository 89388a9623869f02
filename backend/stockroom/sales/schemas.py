"""Request and response bodies of the sales order routes."""

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

from stockroom.sales.models import SalesOrderStatus
from stockroom.stock.order_schemas import (
    MAX_LINES,
    LineQuantity,
    distinct_lines,
    distinct_products,
)
from stockroom.stock.schemas import Note, Quantity, Reference
from stockroom.types import NOT_NULL, SAFE_TEXT, Email, MoneyIn, MoneyStr

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SAFE_TEXT
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Customer(_In):
    name: Name
    email: Email | None = None


class CustomerRead(BaseModel):
    name: str
    email: str | None


class SalesOrderLineIn(_In):
    product_id: uuid.UUID
    quantity: Quantity
    unit_price: MoneyIn | None = Field(
        default=None, description="defaults to the product's sale price"
    )


OrderLines = Annotated[
    list[SalesOrderLineIn],
    Field(min_length=1, max_length=MAX_LINES),
    AfterValidator(distinct_products),
]


class SalesOrderCreate(_In):
    warehouse_id: uuid.UUID
    customer: Customer
    reference: Reference = None
    note: Note = None
    lines: OrderLines


class SalesOrderUpdate(_In):
    """Draft orders only. `lines`, when given, replaces every line."""

    warehouse_id: Annotated[uuid.UUID | None, NOT_NULL] = None
    customer: Annotated[Customer | None, NOT_NULL] = None
    reference: Reference = None
    note: Note = None
    lines: Annotated[OrderLines | None, NOT_NULL] = None

    @field_validator("warehouse_id", "customer", "lines")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value


class ShipRequest(_In):
    lines: Annotated[
        list[LineQuantity],
        Field(min_length=1, max_length=MAX_LINES),
        AfterValidator(distinct_lines),
    ]
    reference: Reference = None


class SalesOrderLineRead(_Out):
    id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    reserved_quantity: int
    shipped_quantity: int
    unit_price: MoneyStr


class SalesOrderRead(_Out):
    id: uuid.UUID
    number: str
    status: SalesOrderStatus
    warehouse_id: uuid.UUID
    customer: CustomerRead
    reference: str | None
    note: str | None
    lines: list[SalesOrderLineRead]
    total_price: MoneyStr
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    confirmed_at: datetime | None
    closed_at: datetime | None
    version: int


def total_price(lines: list[SalesOrderLineRead]) -> Decimal:
    return sum((line.quantity * line.unit_price for line in lines), Decimal("0.00"))
