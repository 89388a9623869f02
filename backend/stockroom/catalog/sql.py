"""SQL building blocks shared by the catalog's queries (simple entities and products)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, Select, Uuid, bindparam, column, func, select, table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from stockroom.catalog.models import Category
from stockroom.http.pagination import Sort

# The stock domain owns `stock_levels` and imports the catalog, never the reverse. The catalog only
# reads the table (on-hand totals, low stock, the warehouse-delete guard), through these columns.
stock_levels = table(
    "stock_levels",
    column("product_id", Uuid),
    column("warehouse_id", Uuid),
    column("on_hand", Integer),
    column("reserved", Integer),
    column("on_order", Integer),
    column("in_transit_out", Integer),
)


def ordered(statement: Select[Any], column: Any, sort: Sort, id_column: Any) -> Select[Any]:
    # The id tiebreak makes the order total, so pages never overlap or skip rows.
    if sort.descending:
        return statement.order_by(column.desc(), id_column.desc())
    return statement.order_by(column.asc(), id_column.asc())


async def page(
    session: AsyncSession, statement: Select[Any], offset: int, limit: int
) -> tuple[Sequence[Any], int]:
    """One page of the statement's rows and the number of all its rows."""
    total = await session.scalar(
        statement.order_by(None).with_only_columns(func.count(), maintain_column_froms=True)
    )
    rows = (await session.execute(statement.offset(offset).limit(limit))).all()
    return rows, int(total or 0)


def _subtree_statement() -> Select[tuple[uuid.UUID]]:
    tree = (
        select(Category.id)
        .where(Category.id == bindparam("root_id", type_=Uuid))
        .cte("category_tree", recursive=True)
    )
    child = aliased(Category)
    tree = tree.union_all(select(child.id).join(tree, child.parent_id == tree.c.id))
    return select(tree.c.id)


# Built once: constructing a recursive CTE costs more than running it.
SUBTREE = _subtree_statement()


def subtree_ids(root_id: uuid.UUID) -> Select[tuple[uuid.UUID]]:
    """The ids of a category and all its descendants (recursive CTE)."""
    return SUBTREE.params(root_id=root_id)


async def category_subtree(session: AsyncSession, root_id: uuid.UUID) -> list[uuid.UUID]:
    """A category's id and its descendants' ids (recursive CTE); empty if it does not exist."""
    return list(await session.scalars(SUBTREE, {"root_id": root_id}))
