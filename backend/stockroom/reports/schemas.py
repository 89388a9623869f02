"""Report bodies."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import BaseModel, Field

from stockroom.types import MoneyStr


class SalesGroupBy(StrEnum):
    CATEGORY = "category"
    PRODUCT = "product"
    WAREHOUSE = "warehouse"
    DAY = "day"


class SalesSummaryRow(BaseModel):
    key: str = Field(
        description="the group: a category, product or warehouse id ('uncategorized' for "
        "products without a category), or a UTC day YYYY-MM-DD"
    )
    label: str = Field(description="category name, product name, warehouse name, or the day")
    units: int = Field(description="units sold, net of returns and reversals")
    revenue: MoneyStr = Field(description="sum of units x unit_price, net of returns")
    cost: MoneyStr | None = Field(
        default=None, description="only with costs:read: units x weighted average receipt cost"
    )
    margin: MoneyStr | None = Field(
        default=None, description="only with costs:read: revenue - cost"
    )


class PurchasesGroupBy(StrEnum):
    SUPPLIER = "supplier"
    PRODUCT = "product"
    WAREHOUSE = "warehouse"
    DAY = "day"


class PurchasesSummaryRow(BaseModel):
    key: str = Field(
        description="the group: a supplier, product or warehouse id ('none' for receipts with "
        "no supplier), or a UTC day YYYY-MM-DD"
    )
    label: str = Field(description="supplier name, product name, warehouse name, or the day")
    units: int = Field(description="units received, net of reversed receipts")
    purchase_orders: int = Field(description="distinct purchase orders these receipts belong to")
    cost: MoneyStr | None = Field(
        default=None, description="only with costs:read: sum of units x the receipt's unit_cost"
    )


class ValuationRow(BaseModel):
    category_id: uuid.UUID | None
    category: str = Field(description="category name; 'Uncategorized' for products without one")
    units: int = Field(description="on hand plus in transit out of the warehouse(s)")
    value: MoneyStr = Field(description="units x the product's cost price")


class StockValuation(BaseModel):
    total_value: MoneyStr
    rows: list[ValuationRow]
