"""SQL of the product list, detail and export. Never commits; the service owns the transaction.

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
    exists,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog.models import SEARCH_SEPARATOR, Category, Product, Supplier, Warehouse
from stockroom.catalog.schemas import ProductFilters
from stockroom.catalog.sql import category_subtree, ordered, stock_levels
from stockroom.db.like import like_pattern
from stockroom.db.session import DriverQuery
from stockroom.http.pagination import Sort


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
        page = ordered(select(gathered), gathered.c.sort_key, sort, gathered.c.id)
    else:
        page = ordered(matches, sort_key, sort, Product.id)
    chosen = (
        page.offset(bindparam("offset", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
        .subquery("page")
    )
    return ordered(
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
    return ordered(statement, _product_sort_column(sort.field), sort, Product.id), params


async def stream_rows(
    session: AsyncSession, statement: Select[Any], params: dict[str, Any], batch: int = 2000
) -> AsyncIterator[Sequence[Any]]:
    """Rows in batches through a server-side cursor: constant memory for any result size."""
    result = await session.stream(statement.execution_options(yield_per=batch), params)
    async for partition in result.partitions(batch):
        yield partition
