"""Request and response bodies of the stock routes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from stockroom.stock.models import CountStatus, MovementType, TransferStatus
from stockroom.types import SAFE_TEXT, WHOLE_NUMBER, MoneyIn, MoneyStr

# One movement moves at most a million units: far beyond any real one, and far from int4 limits.
MAX_QUANTITY = 1_000_000
Quantity = Annotated[int, Field(strict=True, gt=0, le=MAX_QUANTITY), WHOLE_NUMBER]
Reference = (
    Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), SAFE_TEXT
    ]
    | None
)
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), SAFE_TEXT] | None

SYSTEM_MOVEMENT_TYPES = frozenset(
    {MovementType.TRANSFER_OUT, MovementType.TRANSFER_IN, MovementType.COUNT}
)
ADJUST_MOVEMENT_TYPES = frozenset({MovementType.ADJUSTMENT, MovementType.DAMAGE})
NEGATIVE_MOVEMENT_TYPES = frozenset(
    {MovementType.SALE, MovementType.DAMAGE, MovementType.TRANSFER_OUT}
)
PRICED_MOVEMENT_TYPES = frozenset({MovementType.SALE, MovementType.RETURN})
COSTED_MOVEMENT_TYPES = frozenset({MovementType.RECEIPT})


def signed(type_: MovementType, quantity: int) -> int:
    """The ledger delta of a movement: negative for outgoing types, as given for signed ones."""
    return -quantity if type_ in NEGATIVE_MOVEMENT_TYPES else quantity


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _movement_rules(schema: dict[str, Any]) -> None:
    """`_check_rules` below, for the OpenAPI document: one branch per postable type."""
    positive = {"minimum": 1}
    no_cost, no_price = {"unit_cost": {"type": "null"}}, {"unit_price": {"type": "null"}}
    branches = [
        (COSTED_MOVEMENT_TYPES, positive, no_price),
        (PRICED_MOVEMENT_TYPES, positive, no_cost),
        ({MovementType.DAMAGE}, positive, {**no_cost, **no_price}),
        ({MovementType.ADJUSTMENT}, {"not": {"const": 0}}, {**no_cost, **no_price}),
    ]
    schema["anyOf"] = [
        {
            "properties": {
                "type": {"enum": sorted(t.value for t in types)},
                "quantity": quantity,
                **extra,
            }
        }
        for types, quantity, extra in branches
    ]


class MovementCreate(_In):
    """A movement posted by a user. `transfer_in`, `transfer_out` and `count` are system-only."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_movement_rules)

    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    type: MovementType = Field(
        description="receipt (+), return (+), sale (-), damage (-), adjustment (signed). "
        "transfer_out, transfer_in and count are posted by transfers and counts only (422)."
    )
    quantity: Annotated[
        int,
        Field(
            strict=True,
            ge=-MAX_QUANTITY,
            le=MAX_QUANTITY,
            description="a positive integer; for `adjustment` a signed non-zero integer",
        ),
        WHOLE_NUMBER,
    ]
    unit_cost: MoneyIn | None = Field(
        default=None, description="receipts only; defaults to the product's cost price"
    )
    unit_price: MoneyIn | None = Field(
        default=None,
        description="sales and returns only; defaults to the product's sale price",
    )
    reference: Reference = None
    note: Note = None

    @model_validator(mode="after")
    def _check_rules(self) -> MovementCreate:
        if self.type in SYSTEM_MOVEMENT_TYPES:
            raise ValueError(
                f"{self.type.value} movements are created by transfers and counts, not posted"
            )
        if self.type is MovementType.ADJUSTMENT:
            if self.quantity == 0:
                raise ValueError("an adjustment quantity must not be 0")
        elif self.quantity <= 0:
            raise ValueError(f"a {self.type.value} quantity must be a positive integer")
        if self.unit_price is not None and self.type not in PRICED_MOVEMENT_TYPES:
            raise ValueError("unit_price applies to sale and return movements only")
        if self.unit_cost is not None and self.type not in COSTED_MOVEMENT_TYPES:
            raise ValueError("unit_cost applies to receipt movements only")
        return self

    @property
    def signed_quantity(self) -> int:
        return signed(self.type, self.quantity)


class MovementRead(_Out):
    id: uuid.UUID
    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    type: MovementType
    quantity: int = Field(description="as posted (signed for adjustment and count)")
    signed_quantity: int = Field(description="the change to on hand")
    on_hand_after: int = Field(description="on hand at this product and warehouse just after")
    unit_cost: MoneyStr | None = Field(
        default=None, description="receipts; present only for callers with costs:read"
    )
    unit_price: MoneyStr | None = None
    reference: str | None = None
    note: str | None = None
    reverses_id: uuid.UUID | None = Field(
        default=None, description="the movement this one compensates (reversals)"
    )
    transfer_id: uuid.UUID | None = None
    created_by: uuid.UUID | None = None
    request_id: str | None = None
    created_at: datetime


class ReverseRequest(_In):
    note: Note = None


class StockLevelRead(_Out):
    product_id: uuid.UUID
    sku: str
    product_name: str
    warehouse_id: uuid.UUID
    warehouse_code: str
    on_hand: int
    reserved: int = Field(
        description="unshipped quantities of confirmed and partially shipped sales orders"
    )
    available: int = Field(description="on_hand - reserved: what a sale or transfer may take")
    on_order: int = Field(
        description="outstanding quantities of ordered and partially received purchase orders"
    )
    over_reserved: bool = Field(
        description="true when damage or a count took on hand below reserved (available < 0)"
    )
    in_transit_out: int
    reorder_point: int


class LowStockProduct(_Out):
    id: uuid.UUID
    sku: str
    name: str
    category_id: uuid.UUID | None
    on_hand: int = Field(description="total on hand over all warehouses")
    in_transit: int = Field(description="units on their way between warehouses")
    reorder_point: int
    reorder_quantity: int


class TransferCreate(_In):
    product_id: uuid.UUID
    from_warehouse_id: uuid.UUID
    to_warehouse_id: uuid.UUID
    quantity: Quantity
    reference: Reference = None
    note: Note = None

    @model_validator(mode="after")
    def _distinct_warehouses(self) -> TransferCreate:
        if self.from_warehouse_id == self.to_warehouse_id:
            raise ValueError("from_warehouse_id and to_warehouse_id must differ")
        return self


class TransferRead(_Out):
    id: uuid.UUID
    product_id: uuid.UUID
    from_warehouse_id: uuid.UUID
    to_warehouse_id: uuid.UUID
    quantity: int
    status: TransferStatus
    reference: str | None = None
    note: str | None = None
    created_by: uuid.UUID | None = None
    created_at: datetime
    closed_by: uuid.UUID | None = None
    closed_at: datetime | None = None


class CountCreate(_In):
    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    counted_quantity: Annotated[int, Field(strict=True, ge=0, le=100 * MAX_QUANTITY), WHOLE_NUMBER]
    note: Note = None


class CountRead(_Out):
    id: uuid.UUID
    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    expected: int = Field(description="on hand when the count was recorded")
    counted: int
    variance: int = Field(description="counted - expected")
    status: CountStatus
    note: str | None = None
    movement_id: uuid.UUID | None = Field(
        default=None, description="the `count` movement that applied the variance, if any"
    )
    created_by: uuid.UUID | None = None
    created_at: datetime
    reviewed_by: uuid.UUID | None = None
    reviewed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MovementFilter:
    product_id: uuid.UUID | None = None
    warehouse_id: uuid.UUID | None = None
    type: str | None = None
    reference: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
