"""SQL of the catalog domain. Never commits; the service owns the transaction.

Stock levels are read here (on hand per product) but never written: they belong to the ledger.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    Uuid,
    and_,
    bindparam,
    column,
    exists,
    func,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from stockroom.catalog.models import (
    SEARCH_SEPARATOR,
    Category,
    Product,
    Supplier,
    Warehouse,
)
from stockroom.catalog.schemas import (
    ProductFilters,
)
from stockroom.db.session import DriverQuery
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


def constraint_of(exc: IntegrityError) -> str:
    """The name of the violated constraint (or the message, to match names against)."""
    cause = getattr(exc.orig, "__cause__", None)
    name = getattr(cause, "constraint_name", None)
    return name if isinstance(name, str) else str(exc.orig)


def like_pattern(text: str) -> str:
    """`%text%` for ILIKE, with the user's own `%`, `_` and `\\` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _ordered(statement: Select[Any], column: Any, sort: Sort, id_column: Any) -> Select[Any]:
    # The id tiebreak makes the order total, so pages never overlap or skip rows.
    if sort.descending:
        return statement.order_by(column.desc(), id_column.desc())
    return statement.order_by(column.asc(), id_column.asc())


async def _page(
    session: AsyncSession, statement: Select[Any], offset: int, limit: int
) -> tuple[Sequence[Any], int]:
    total = await session.scalar(
        statement.order_by(None).with_only_columns(func.count(), maintain_column_froms=True)
    )
    rows = (await session.execute(statement.offset(offset).limit(limit))).all()
    return rows, int(total or 0)


# Categories


async def get_category(session: AsyncSession, category_id: uuid.UUID) -> Category | None:
    return await session.get(Category, category_id)


async def list_categories(
    session: AsyncSession,
    *,
    parent_id: uuid.UUID | None,
    roots_only: bool,
    q: str | None,
    sort: Sort,
    offset: int,
    limit: int,
) -> tuple[list[Category], int]:
    statement = select(Category)
    if parent_id is not None:
        statement = statement.where(Category.parent_id == parent_id)
    elif roots_only:
        statement = statement.where(Category.parent_id.is_(None))
    if q:
        statement = statement.where(Category.name.ilike(like_pattern(q), escape="\\"))
    column = getattr(Category, sort.field)
    rows, total = await _page(
        session, _ordered(statement, column, sort, Category.id), offset, limit
    )
    return [row[0] for row in rows], total


async def sibling_name_taken(
    session: AsyncSession, name: str, parent_id: uuid.UUID | None, exclude_id: uuid.UUID | None
) -> bool:
    condition = and_(
        Category.name == name,
        Category.parent_id.is_(None) if parent_id is None else Category.parent_id == parent_id,
    )
    if exclude_id is not None:
        condition = and_(condition, Category.id != exclude_id)
    return bool(await session.scalar(select(exists().where(condition))))


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
_SUBTREE = _subtree_statement()


def subtree_ids(root_id: uuid.UUID) -> Select[tuple[uuid.UUID]]:
    """The ids of a category and all its descendants (recursive CTE)."""
    return _SUBTREE.params(root_id=root_id)


async def is_in_subtree(session: AsyncSession, root_id: uuid.UUID, candidate_id: uuid.UUID) -> bool:
    ids = subtree_ids(root_id).subquery()
    return bool(await session.scalar(select(exists().where(ids.c.id == candidate_id))))


async def category_has_children(session: AsyncSession, category_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(exists().where(Category.parent_id == category_id))))


async def category_has_products(session: AsyncSession, category_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(exists().where(Product.category_id == category_id))))


# Suppliers


async def get_supplier(session: AsyncSession, supplier_id: uuid.UUID) -> Supplier | None:
    return await session.get(Supplier, supplier_id)


async def list_suppliers(
    session: AsyncSession,
    *,
    is_active: bool | None,
    q: str | None,
    sort: Sort,
    offset: int,
    limit: int,
) -> tuple[list[Supplier], int]:
    statement = select(Supplier)
    if is_active is not None:
        statement = statement.where(Supplier.is_active.is_(is_active))
    if q:
        pattern = like_pattern(q)
        statement = statement.where(
            or_(
                Supplier.name.ilike(pattern, escape="\\"),
                Supplier.email.ilike(pattern, escape="\\"),
            )
        )
    column = getattr(Supplier, sort.field)
    rows, total = await _page(
        session, _ordered(statement, column, sort, Supplier.id), offset, limit
    )
    return [row[0] for row in rows], total


async def supplier_name_taken(
    session: AsyncSession, name: str, exclude_id: uuid.UUID | None
) -> bool:
    condition = Supplier.name == name
    if exclude_id is not None:
        condition = and_(condition, Supplier.id != exclude_id)
    return bool(await session.scalar(select(exists().where(condition))))


async def supplier_has_products(session: AsyncSession, supplier_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(exists().where(Product.supplier_id == supplier_id))))


# Warehouses


async def get_warehouse(session: AsyncSession, warehouse_id: uuid.UUID) -> Warehouse | None:
    return await session.get(Warehouse, warehouse_id)


async def list_warehouses(
    session: AsyncSession,
    *,
    is_active: bool | None,
    q: str | None,
    sort: Sort,
    offset: int,
    limit: int,
) -> tuple[list[Warehouse], int]:
    statement = select(Warehouse)
    if is_active is not None:
        statement = statement.where(Warehouse.is_active.is_(is_active))
    if q:
        pattern = like_pattern(q)
        statement = statement.where(
            or_(
                Warehouse.code.ilike(pattern, escape="\\"),
                Warehouse.name.ilike(pattern, escape="\\"),
            )
        )
    column = getattr(Warehouse, sort.field)
    rows, total = await _page(
        session, _ordered(statement, column, sort, Warehouse.id), offset, limit
    )
    return [row[0] for row in rows], total


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
    condition = func.lower(Warehouse.code) == code.lower()
    if exclude_id is not None:
        condition = and_(condition, Warehouse.id != exclude_id)
    return bool(await session.scalar(select(exists().where(condition))))


async def warehouse_holds_stock(session: AsyncSession, warehouse_id: uuid.UUID) -> bool:
    return bool(
        await session.scalar(
            select(
                exists().where(
                    stock_levels.c.warehouse_id == warehouse_id,
                    or_(stock_levels.c.on_hand > 0, stock_levels.c.in_transit_out > 0),
                )
            )
        )
    )


# Products


def on_hand_total() -> ColumnElement[int]:
    """Total on hand over all warehouses, correlated to the outer `products` row.

    A scalar subquery in the select list is evaluated only for the rows a page returns (unless
    the caller sorts or filters on it), through the (product_id, warehouse_id) primary key.
    """
    return (
        select(func.coalesce(func.sum(stock_levels.c.on_hand), 0))
        .where(stock_levels.c.product_id == Product.id)
        .correlate(Product)
        .scalar_subquery()
    )


def _search_text() -> ColumnElement[str]:
    # The expression of ix_products_search_trgm (models.SEARCH_TEXT), term by term, so that the
    # planner matches it to the index; the constants are inline, not bind parameters.
    separator = literal_column("chr(31)", String)
    empty = literal_column("''", String)
    return (
        Product.name
        + separator
        + Product.sku
        + separator
        + func.coalesce(Product.description, empty)
        + separator
        + func.coalesce(Product.barcode, empty)
    )


_SEARCH_TEXT = _search_text()

PRODUCT_COLUMNS = tuple(column for column in Product.__table__.columns)


def product_rows() -> Select[Any]:
    """Every product column plus `on_hand`, one row per product."""
    return select(*PRODUCT_COLUMNS, on_hand_total().label("on_hand"))


async def category_subtree(session: AsyncSession, root_id: uuid.UUID) -> list[uuid.UUID]:
    """A category's id and its descendants' ids (recursive CTE); empty if it does not exist."""
    return list(await session.scalars(_SUBTREE, {"root_id": root_id}))


@dataclass(frozen=True, slots=True)
class _Shape:
    """Which filters a list request uses: list statements are built once per shape (with bind
    parameters for the values) and reused, since building them costs more than running them."""

    q: bool
    q_has_separator: bool
    category: bool
    supplier: bool
    is_active: bool | None
    low_stock: bool | None
    created_from: bool
    created_to: bool


def _shape_and_params(
    filters: ProductFilters, category_ids: Sequence[uuid.UUID] | None
) -> tuple[_Shape, dict[str, Any]]:
    shape = _Shape(
        q=bool(filters.q),
        q_has_separator=SEARCH_SEPARATOR in (filters.q or ""),
        category=category_ids is not None,
        supplier=filters.supplier_id is not None,
        is_active=filters.is_active,
        low_stock=filters.low_stock,
        created_from=filters.created_from is not None,
        created_to=filters.created_to is not None,
    )
    params: dict[str, Any] = {}
    if filters.q:
        params["q_pattern"] = like_pattern(filters.q)
    if category_ids is not None:
        params["category_ids"] = list(category_ids)
    if filters.supplier_id is not None:
        params["supplier_id"] = filters.supplier_id
    if filters.created_from is not None:
        params["created_from"] = filters.created_from
    if filters.created_to is not None:
        params["created_to"] = filters.created_to
    return shape, params


def _filtered(statement: Select[Any], shape: _Shape) -> Select[Any]:
    # The category subtree is resolved beforehand (`category_subtree`) and passed as a list of
    # ids: the planner then estimates the matching rows from real statistics instead of a CTE
    # guess, and picks the (category_id, name, id) index instead of walking the whole table.
    if shape.q:
        pattern = bindparam("q_pattern", type_=String)
        # One trigram index serves the joined text (ix_products_search_trgm). A search string
        # without the separator matches the joined text exactly where it matches one column;
        # one with it could match across two columns there, so each column is checked as well.
        statement = statement.where(_SEARCH_TEXT.ilike(pattern, escape="\\"))
        if shape.q_has_separator:
            statement = statement.where(
                or_(
                    Product.name.ilike(pattern, escape="\\"),
                    Product.sku.ilike(pattern, escape="\\"),
                    Product.description.ilike(pattern, escape="\\"),
                    Product.barcode.ilike(pattern, escape="\\"),
                )
            )
    if shape.category:
        statement = statement.where(
            Product.category_id.in_(bindparam("category_ids", expanding=True, type_=Uuid))
        )
    if shape.supplier:
        statement = statement.where(Product.supplier_id == bindparam("supplier_id", type_=Uuid))
    if shape.is_active is not None:
        statement = statement.where(Product.is_active.is_(shape.is_active))
    if shape.low_stock is not None:
        low = on_hand_total() <= Product.reorder_point
        statement = statement.where(low if shape.low_stock else ~low)
    if shape.created_from:
        statement = statement.where(
            Product.created_at >= bindparam("created_from", type_=DateTime(timezone=True))
        )
    if shape.created_to:
        statement = statement.where(
            Product.created_at < bindparam("created_to", type_=DateTime(timezone=True))
        )
    return statement


def _product_sort_column(field: str) -> Any:
    if field == "on_hand":
        return on_hand_total()
    return getattr(Product, field)


# A page is picked in one of two ways, chosen by the number of matches (counted first, since the
# response carries it anyway). Few matches: gather them all through the filter's own index (the
# trigram index for `q`, the (category_id, name, id) index for a category) and sort them. Many:
# walk the sort order's index and keep the matching rows until the page is full, which reads
# about (offset + limit) x products / matches rows. At a million products the two cost the same
# around 5,000-25,000 matches (docs/benchmarks.md, Catalog); left to itself the planner guesses
# the number of trigram matches (1 % of the table for any 4 characters) and walks the name index
# for a search matching 400 products: 340 ms instead of 3 ms.
GATHER_UP_TO = 10_000


@lru_cache(maxsize=256)
def _count_statement(shape: _Shape) -> Select[Any]:
    return _filtered(select(func.count()).select_from(Product), shape)


@lru_cache(maxsize=256)
def _page_statement(shape: _Shape, sort: Sort, gather: bool) -> Select[Any]:
    sort_key = _product_sort_column(sort.field).label("sort_key")
    matches = _filtered(select(Product.id, sort_key), shape)
    if gather:
        # A materialized CTE is planned on its own: through the filter's index, not the sort's.
        gathered = matches.cte("matches").prefix_with("MATERIALIZED")
        page = _ordered(select(gathered), gathered.c.sort_key, sort, gathered.c.id)
    else:
        page = _ordered(matches, sort_key, sort, Product.id)
    chosen = (
        page.offset(bindparam("offset", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
        .subquery("page")
    )
    return _ordered(
        product_rows().join(chosen, chosen.c.id == Product.id), chosen.c.sort_key, sort, Product.id
    )


def product_count_statement(
    filters: ProductFilters, category_ids: Sequence[uuid.UUID] | None
) -> tuple[Select[Any], dict[str, Any]]:
    """The count of the product list and its parameters."""
    shape, params = _shape_and_params(filters, category_ids)
    return _count_statement(shape), params


def product_page_statement(
    filters: ProductFilters,
    category_ids: Sequence[uuid.UUID] | None,
    sort: Sort,
    offset: int,
    limit: int,
    total: int,
) -> tuple[Select[Any], dict[str, Any]]:
    """The page query of the product list, for a list of `total` matches, and its parameters.

    The page is chosen first on ids and sort keys only (which an index can answer without
    touching the table), then joined back to the rows it needs ("deferred join").
    """
    shape, params = _shape_and_params(filters, category_ids)
    statement = _page_statement(shape, sort, total <= GATHER_UP_TO)
    return statement, params | {"offset": offset, "limit": limit}


async def _category_ids(session: AsyncSession, filters: ProductFilters) -> list[uuid.UUID] | None:
    if filters.category_id is None:
        return None
    return await category_subtree(session, filters.category_id)


async def list_products(
    session: AsyncSession, filters: ProductFilters, sort: Sort, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    category_ids = await _category_ids(session, filters)
    count, params = product_count_statement(filters, category_ids)
    total = int(await session.scalar(count, params) or 0)
    if offset >= total:
        return [], total
    listing, params = product_page_statement(filters, category_ids, sort, offset, limit, total)
    rows = (await session.execute(listing, params)).all()
    return [row._asdict() for row in rows], total


async def get_product_row(session: AsyncSession, product_id: uuid.UUID) -> dict[str, Any] | None:
    row = (await session.execute(product_rows().where(Product.id == product_id))).one_or_none()
    return dict(row._mapping) if row is not None else None


def _stock_per_warehouse() -> Any:
    """The outer product's levels as a JSON array, by warehouse code: warehouse id and code,
    on hand, reserved, available, on order and in transit out."""
    level = func.json_build_object(
        "warehouse_id",
        stock_levels.c.warehouse_id,
        "warehouse_code",
        Warehouse.code,
        "on_hand",
        stock_levels.c.on_hand,
        "reserved",
        stock_levels.c.reserved,
        "available",
        stock_levels.c.on_hand - stock_levels.c.reserved,
        "on_order",
        stock_levels.c.on_order,
        "in_transit_out",
        stock_levels.c.in_transit_out,
    )
    return (
        select(
            func.coalesce(
                func.json_agg(aggregate_order_by(level, Warehouse.code)),
                literal_column("'[]'::json"),
            )
        )
        .select_from(stock_levels.join(Warehouse, Warehouse.id == stock_levels.c.warehouse_id))
        .where(stock_levels.c.product_id == Product.id)
        .correlate(Product)
        .scalar_subquery()
    )


# `GET /products/{id}` in one statement, compiled once: the product row, its total on hand and
# its stock per warehouse (one snapshot, one round trip).
_PRODUCT_DETAIL = DriverQuery.of(
    product_rows()
    .add_columns(_stock_per_warehouse().label("stock"))
    .where(Product.id == bindparam("product_id"))
)


async def get_product_detail(
    session: AsyncSession | asyncpg.Connection, product_id: uuid.UUID
) -> dict[str, Any] | None:
    """`get_product_row` with `stock` (its levels, by warehouse code), on the driver connection
    (the session's, or a leased one)."""
    row = await _PRODUCT_DETAIL.fetchrow(session, {"product_id": product_id})
    if row is None:
        return None
    values = dict(row)
    stock = values["stock"]
    values["stock"] = json.loads(stock) if isinstance(stock, str | bytes) else stock
    return values


async def get_product(session: AsyncSession, product_id: uuid.UUID) -> Product | None:
    return await session.get(Product, product_id)


async def sku_taken(session: AsyncSession, sku: str, exclude_id: uuid.UUID | None) -> bool:
    condition = func.lower(Product.sku) == sku.lower()
    if exclude_id is not None:
        condition = and_(condition, Product.id != exclude_id)
    return bool(await session.scalar(select(exists().where(condition))))


async def barcode_taken(session: AsyncSession, barcode: str, exclude_id: uuid.UUID | None) -> bool:
    condition = Product.barcode == barcode
    if exclude_id is not None:
        condition = and_(condition, Product.id != exclude_id)
    return bool(await session.scalar(select(exists().where(condition))))


async def export_statement(
    session: AsyncSession, filters: ProductFilters, sort: Sort
) -> tuple[Select[Any], dict[str, Any]]:
    """The filtered list with category and supplier names, for CSV export, and its parameters."""
    shape, params = _shape_and_params(filters, await _category_ids(session, filters))
    statement: Select[Any] = (
        select(
            *PRODUCT_COLUMNS,
            on_hand_total().label("on_hand"),
            Category.name.label("category"),
            Supplier.name.label("supplier"),
        )
        .outerjoin(Category, Category.id == Product.category_id)
        .outerjoin(Supplier, Supplier.id == Product.supplier_id)
    )
    statement = _filtered(statement, shape)
    return _ordered(statement, _product_sort_column(sort.field), sort, Product.id), params


async def stream_rows(
    session: AsyncSession, statement: Select[Any], params: dict[str, Any], batch: int = 2000
) -> AsyncIterator[Sequence[Any]]:
    """Rows in batches through a server-side cursor: constant memory for any result size."""
    result = await session.stream(statement.execution_options(yield_per=batch), params)
    async for partition in result.partitions(batch):
        yield partition


# Reference data by name, for the importer.


async def categories_by_lower_name(session: AsyncSession) -> dict[str, list[uuid.UUID]]:
    names: dict[str, list[uuid.UUID]] = {}
    for category_id, name in await session.execute(select(Category.id, Category.name)):
        names.setdefault(name.lower(), []).append(category_id)
    return names


async def suppliers_by_lower_name(session: AsyncSession) -> dict[str, list[uuid.UUID]]:
    names: dict[str, list[uuid.UUID]] = {}
    for supplier_id, name in await session.execute(select(Supplier.id, Supplier.name)):
        names.setdefault(name.lower(), []).append(supplier_id)
    return names
