"""SQL of the catalog domain. Never commits; the service owns the transaction.

The generic queries of the three simple entities (categories, suppliers, warehouses) are here,
with what is particular to each; the product queries live in `product_queries` and are
re-exported, so `repository.<name>` reaches every catalog query.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog.models import Category, Supplier, Warehouse
from stockroom.catalog.product_queries import (
    GATHER_UP_TO,
    PRODUCT_COLUMNS,
    barcode_taken,
    export_statement,
    get_product,
    get_product_detail,
    get_product_row,
    list_products,
    on_hand_total,
    product_count_statement,
    product_page_statement,
    product_rows,
    sku_taken,
    stream_rows,
)
from stockroom.catalog.sql import category_subtree, ordered, page, stock_levels, subtree_ids
from stockroom.db.like import like_pattern
from stockroom.http.pagination import Sort

# Re-exported: the product queries and shared blocks, reached as `repository.<name>`.
__all__ = [
    "GATHER_UP_TO",
    "PRODUCT_COLUMNS",
    "barcode_taken",
    "category_subtree",
    "export_statement",
    "get_product",
    "get_product_detail",
    "get_product_row",
    "like_pattern",
    "list_products",
    "on_hand_total",
    "product_count_statement",
    "product_page_statement",
    "product_rows",
    "sku_taken",
    "stream_rows",
    "subtree_ids",
]

Simple = TypeVar("Simple", Category, Supplier, Warehouse)
NamedSimple = TypeVar("NamedSimple", Category, Supplier)


# The simple entities, generically


async def list_page(
    session: AsyncSession,
    model: type[Simple],
    *,
    where: Sequence[ColumnElement[bool]],
    search: Sequence[Any],
    q: str | None,
    sort: Sort,
    offset: int,
    limit: int,
) -> tuple[list[Simple], int]:
    """One page of `model` rows matching `where` and (case-insensitively) `q` in any of the
    `search` columns, sorted by `sort` with the id as tiebreak, and the number of all matches."""
    statement = select(model).where(*where)
    if q:
        pattern = like_pattern(q)
        statement = statement.where(or_(*(col.ilike(pattern, escape="\\") for col in search)))
    column = getattr(model, sort.field)
    rows, total = await page(session, ordered(statement, column, sort, model.id), offset, limit)
    return [row[0] for row in rows], total


async def taken(
    session: AsyncSession,
    model: type[Simple],
    condition: ColumnElement[bool],
    exclude_id: uuid.UUID | None,
) -> bool:
    """Whether a row other than `exclude_id` matches `condition` (a unique value in use)."""
    if exclude_id is not None:
        condition = and_(condition, model.id != exclude_id)
    return await any_row(session, condition)


async def any_row(session: AsyncSession, condition: ColumnElement[bool]) -> bool:
    return bool(await session.scalar(select(exists().where(condition))))


async def ids_by_lower_name(
    session: AsyncSession, model: type[NamedSimple]
) -> dict[str, list[uuid.UUID]]:
    """Ids by lower-cased name (several rows may share one), for the importer."""
    names: dict[str, list[uuid.UUID]] = {}
    for row_id, name in await session.execute(select(model.id, model.name)):
        names.setdefault(name.lower(), []).append(row_id)
    return names


# Categories


async def get_category(session: AsyncSession, category_id: uuid.UUID) -> Category | None:
    return await session.get(Category, category_id)


async def sibling_name_taken(
    session: AsyncSession, name: str, parent_id: uuid.UUID | None, exclude_id: uuid.UUID | None
) -> bool:
    condition = and_(
        Category.name == name,
        Category.parent_id.is_(None) if parent_id is None else Category.parent_id == parent_id,
    )
    return await taken(session, Category, condition, exclude_id)


async def is_in_subtree(session: AsyncSession, root_id: uuid.UUID, candidate_id: uuid.UUID) -> bool:
    ids = subtree_ids(root_id).subquery()
    return await any_row(session, ids.c.id == candidate_id)


# Suppliers


async def get_supplier(session: AsyncSession, supplier_id: uuid.UUID) -> Supplier | None:
    return await session.get(Supplier, supplier_id)


# Warehouses


async def warehouse_codes(
    session: AsyncSession, warehouse_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    rows = await session.execute(
        select(Warehouse.id, Warehouse.code).where(Warehouse.id.in_(warehouse_ids))
    )
    return {row.id: row.code for row in rows}


async def warehouse_code_taken(
    session: AsyncSession, code: str, exclude_id: uuid.UUID | None
) -> bool:
    return await taken(session, Warehouse, func.lower(Warehouse.code) == code.lower(), exclude_id)


async def warehouse_holds_stock(session: AsyncSession, warehouse_id: uuid.UUID) -> bool:
    return await any_row(
        session,
        and_(
            stock_levels.c.warehouse_id == warehouse_id,
            or_(stock_levels.c.on_hand > 0, stock_levels.c.in_transit_out > 0),
        ),
    )
