"""Request and response models of the catalog domain.

Cost visibility is decided once, by choosing the response model: `ProductRead` has no
`cost_price`/`margin` keys at all, `ProductReadWithCosts` adds them (see `product_read_model`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StringConstraints,
    computed_field,
    field_validator,
)

from stockroom.types import (
    NOT_NULL,
    SAFE_TEXT,
    WHOLE_NUMBER,
    Email,
    MoneyIn,
    MoneyStr,
    PositiveMoneyIn,
)

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SAFE_TEXT
]
OptionalText = (
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000), SAFE_TEXT] | None
)
CategoryName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120), SAFE_TEXT
]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=50), SAFE_TEXT] | None


# Sort fields of each list, in the order the contract names them.
CATEGORY_SORTS = ("name", "created_at")
SUPPLIER_SORTS = ("name", "created_at")
WAREHOUSE_SORTS = ("code", "name", "created_at")
PRODUCT_SORTS = ("name", "sku", "created_at", "sale_price", "on_hand")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# Categories


class CategoryCreate(_In):
    name: CategoryName
    description: OptionalText = None
    parent_id: uuid.UUID | None = None


class CategoryUpdate(_In):
    name: Annotated[CategoryName | None, NOT_NULL] = None
    description: OptionalText = None
    parent_id: uuid.UUID | None = None

    @field_validator("name")
    @classmethod
    def _name_not_null(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("name cannot be null")
        return value


class CategoryRead(_Out):
    id: uuid.UUID
    name: str
    description: str | None
    parent_id: uuid.UUID | None
    version: int
    created_at: datetime
    updated_at: datetime


# Suppliers


class SupplierCreate(_In):
    name: Name
    email: Email | None = None
    phone: Phone = None
    address: OptionalText = None
    notes: OptionalText = None
    is_active: StrictBool = True


class SupplierUpdate(_In):
    name: Annotated[Name | None, NOT_NULL] = None
    email: Email | None = None
    phone: Phone = None
    address: OptionalText = None
    notes: OptionalText = None
    is_active: Annotated[StrictBool | None, NOT_NULL] = None

    @field_validator("name", "is_active")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value


class SupplierRead(_Out):
    id: uuid.UUID
    name: str
    email: str | None
    phone: str | None
    address: str | None
    notes: str | None
    is_active: bool = Field(
        description="false: no new or changed purchase orders for this supplier"
    )
    version: int
    created_at: datetime
    updated_at: datetime


# Warehouses

WarehouseCode = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    ),
    SAFE_TEXT,
]


class WarehouseCreate(_In):
    code: WarehouseCode
    name: Name
    address: OptionalText = None
    is_active: StrictBool = True


class WarehouseUpdate(_In):
    code: Annotated[WarehouseCode | None, NOT_NULL] = None
    name: Annotated[Name | None, NOT_NULL] = None
    address: OptionalText = None
    is_active: Annotated[StrictBool | None, NOT_NULL] = None

    @field_validator("code", "name", "is_active")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value


class WarehouseRead(_Out):
    id: uuid.UUID
    code: str
    name: str
    address: str | None
    is_active: bool
    version: int
    created_at: datetime
    updated_at: datetime


# Products

Sku = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"
    ),
    SAFE_TEXT,
]
Barcode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^\S+$"),
    SAFE_TEXT,
]
Unit = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20), SAFE_TEXT
]
Quantity = Annotated[int, Field(strict=True, ge=0, le=2_000_000_000), WHOLE_NUMBER]


class ProductCreate(_In):
    sku: Sku
    name: Name
    description: OptionalText = None
    category_id: uuid.UUID | None = None
    supplier_id: uuid.UUID | None = None
    unit: Unit = "each"
    barcode: Barcode | None = None
    cost_price: MoneyIn = Decimal("0.00")
    sale_price: PositiveMoneyIn
    reorder_point: Quantity = 0
    reorder_quantity: Quantity = 0


class ProductUpdate(_In):
    """Partial update: only the fields sent change. `null` clears an optional field."""

    sku: Annotated[Sku | None, NOT_NULL] = None
    name: Annotated[Name | None, NOT_NULL] = None
    description: OptionalText = None
    category_id: uuid.UUID | None = None
    supplier_id: uuid.UUID | None = None
    unit: Annotated[Unit | None, NOT_NULL] = None
    barcode: Barcode | None = None
    cost_price: Annotated[MoneyIn | None, NOT_NULL] = None
    sale_price: Annotated[PositiveMoneyIn | None, NOT_NULL] = None
    reorder_point: Annotated[Quantity | None, NOT_NULL] = None
    reorder_quantity: Annotated[Quantity | None, NOT_NULL] = None

    @field_validator(
        "sku", "name", "unit", "cost_price", "sale_price", "reorder_point", "reorder_quantity"
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value


class ProductRead(_Out):
    """A product as every catalog reader sees it (no cost price, no margin)."""

    id: uuid.UUID
    sku: str
    name: str
    description: str | None
    category_id: uuid.UUID | None
    supplier_id: uuid.UUID | None
    unit: str
    barcode: str | None
    sale_price: MoneyStr
    reorder_point: int
    reorder_quantity: int
    is_active: bool
    on_hand: int = Field(description="total on hand over all warehouses")
    version: int
    created_at: datetime
    updated_at: datetime


class ProductReadWithCosts(ProductRead):
    """A product as seen by callers holding `costs:read`: adds `cost_price` and `margin`."""

    cost_price: MoneyStr

    @computed_field(description="sale_price - cost_price")  # type: ignore[prop-decorator]
    @property
    def margin(self) -> Annotated[Decimal, PlainSerializer(lambda d: f"{d:.2f}", return_type=str)]:
        return self.sale_price - self.cost_price


class StockAt(BaseModel):
    warehouse_id: uuid.UUID
    warehouse_code: str
    on_hand: int
    reserved: int = Field(description="unshipped quantities of confirmed sales orders")
    available: int = Field(description="on_hand - reserved (negative when over reserved)")
    on_order: int = Field(description="outstanding quantities of open purchase orders")
    in_transit_out: int


class ProductDetail(ProductRead):
    stock: list[StockAt]


class ProductDetailWithCosts(ProductReadWithCosts):
    stock: list[StockAt]


def product_read_model(can_see_costs: bool) -> type[ProductRead]:
    """The list-item model for a caller: the one place where cost visibility is decided."""
    return ProductReadWithCosts if can_see_costs else ProductRead


def product_detail_model(can_see_costs: bool) -> type[ProductRead]:
    return ProductDetailWithCosts if can_see_costs else ProductDetail


def export_columns(can_see_costs: bool) -> list[str]:
    """CSV export columns, derived from the same visibility rule as the JSON models."""
    columns = [
        "sku",
        "name",
        "description",
        "category",
        "supplier",
        "unit",
        "barcode",
        "sale_price",
        "reorder_point",
        "reorder_quantity",
        "is_active",
        "on_hand",
        "id",
        "created_at",
    ]
    if can_see_costs:
        columns[7:7] = ["cost_price", "margin"]
    return columns


class ImportResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    dry_run: bool


class ImportRowError(BaseModel):
    row: int = Field(description="1-based data row number (the header is row 0)")
    field: str | None
    msg: str


# Product list and export filters


@dataclass(frozen=True, slots=True)
class ProductFilters:
    q: str | None = None
    category_id: uuid.UUID | None = None
    supplier_id: uuid.UUID | None = None
    is_active: bool | None = None
    low_stock: bool | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
