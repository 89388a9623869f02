"""Checks shared by the stock use cases that need a product's facts before they post."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.context import Context
from stockroom.stock import repository
from stockroom.stock.errors import (
    InactiveProduct,
    InactiveWarehouse,
    ProductNotFound,
    WarehouseNotFound,
)
from stockroom.stock.repository import ProductFacts


def actor_id(ctx: Context) -> uuid.UUID | None:
    return ctx.actor.id if ctx.actor else None


async def checked_product(
    session: AsyncSession, product_id: uuid.UUID, warehouse_ids: Sequence[uuid.UUID]
) -> ProductFacts:
    """The product, after checking it and the warehouses exist (404) and are active (409).

    The posting primitive checks its own lines; this is for use cases that must know before
    they write anything else (a transfer's destination, a count's level lock).
    """
    targets = await repository.load_targets(session, product_id, warehouse_ids)
    product = targets.product
    if product is None:
        raise ProductNotFound(product_id=str(product_id))
    for warehouse_id in warehouse_ids:
        if warehouse_id not in targets.warehouses_active:
            raise WarehouseNotFound(warehouse_id=str(warehouse_id))
    if not product.is_active:
        raise InactiveProduct(product_id=str(product_id))
    for warehouse_id in warehouse_ids:
        if not targets.warehouses_active[warehouse_id]:
            raise InactiveWarehouse(warehouse_id=str(warehouse_id))
    return product
