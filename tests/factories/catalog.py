"""Catalog rows for tests."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog.models import Category, Product, Supplier, Warehouse


def _suffix() -> str:
    return uuid.uuid4().hex[:8]


async def make_category(
    session: AsyncSession, *, name: str | None = None, parent: Category | None = None
) -> Category:
    category = Category(
        name=name or f"Category {_suffix()}", parent_id=parent.id if parent else None
    )
    session.add(category)
    await session.flush()
    return category


async def make_supplier(session: AsyncSession, *, name: str | None = None) -> Supplier:
    supplier = Supplier(name=name or f"Supplier {_suffix()}", email="orders@example.com")
    session.add(supplier)
    await session.flush()
    return supplier


async def make_warehouse(
    session: AsyncSession, *, code: str | None = None, is_active: bool = True
) -> Warehouse:
    code = code or f"WH-{_suffix().upper()}"
    warehouse = Warehouse(code=code, name=f"Warehouse {code}", is_active=is_active)
    session.add(warehouse)
    await session.flush()
    return warehouse


async def make_product(session: AsyncSession, **fields: Any) -> Product:
    values: dict[str, Any] = {
        "sku": f"SKU-{_suffix().upper()}",
        "name": "Test product",
        "cost_price": Decimal("4.00"),
        "sale_price": Decimal("10.00"),
        "reorder_point": 5,
        "reorder_quantity": 20,
    }
    values.update(fields)
    product = Product(**values)
    session.add(product)
    await session.flush()
    return product


async def set_stock_level(
    session: AsyncSession,
    product: Product,
    warehouse: Warehouse,
    on_hand: int,
    in_transit_out: int = 0,
) -> None:
    """Put a stock level in place directly (catalog tests only read stock levels)."""
    from stockroom.stock.models import StockLevel

    session.add(
        StockLevel(
            product_id=product.id,
            warehouse_id=warehouse.id,
            on_hand=on_hand,
            in_transit_out=in_transit_out,
        )
    )
    await session.flush()
