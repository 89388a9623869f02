"""Use cases of products: one function each, one transaction each, events recorded in the
same transaction as the change they describe."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom import events
from stockroom.catalog import repository
from stockroom.catalog.errors import DuplicateBarcode, DuplicateSku, ProductNotFound
from stockroom.catalog.integrity import apply, or_404, snapshot, translated
from stockroom.catalog.models import Product
from stockroom.catalog.schemas import ProductCreate, ProductFilters, ProductUpdate
from stockroom.context import Context
from stockroom.db.session import single_statement, transaction
from stockroom.http.errors import ValidationFailed
from stockroom.http.etag import check_if_match
from stockroom.http.pagination import PageParams, Sort

ProductRow = dict[str, Any]

PRODUCT_FIELDS = (
    "sku",
    "name",
    "description",
    "category_id",
    "supplier_id",
    "unit",
    "barcode",
    "cost_price",
    "sale_price",
    "reorder_point",
    "reorder_quantity",
    "is_active",
)


async def list_products(
    session: AsyncSession, filters: ProductFilters, sort: Sort, page: PageParams
) -> tuple[list[ProductRow], int]:
    """Products with their total on hand, filtered, sorted (id tiebreak) and paginated."""
    async with transaction(session):
        return await repository.list_products(session, filters, sort, page.offset, page.limit)


async def get_product(session: AsyncSession, product_id: uuid.UUID) -> ProductRow:
    """One product with its total on hand and its stock per warehouse: one statement of its
    own on the driver connection (see `db.session.single_statement`)."""
    async with single_statement(session):
        return await or_404(repository.get_product_detail(session, product_id), ProductNotFound)


async def _check_references(session: AsyncSession, values: dict[str, Any]) -> None:
    errors: list[dict[str, Any]] = []
    category_id = values.get("category_id")
    if category_id is not None and await repository.get_category(session, category_id) is None:
        errors.append(
            {"loc": ["body", "category_id"], "msg": "no such category", "type": "not_found"}
        )
    supplier_id = values.get("supplier_id")
    if supplier_id is not None and await repository.get_supplier(session, supplier_id) is None:
        errors.append(
            {"loc": ["body", "supplier_id"], "msg": "no such supplier", "type": "not_found"}
        )
    if errors:
        raise ValidationFailed(errors[0]["msg"], errors=errors)


def _check_prices(cost_price: Decimal, sale_price: Decimal) -> None:
    if cost_price > sale_price:
        raise ValidationFailed.at(
            ["body", "cost_price"],
            # No values in the message: the caller may change sale_price without costs:read.
            "cost_price must not be above sale_price",
            "cost_above_sale_price",
        )


async def _check_unique(
    session: AsyncSession, values: dict[str, Any], exclude_id: uuid.UUID | None
) -> None:
    sku = values.get("sku")
    if sku is not None and await repository.sku_taken(session, sku, exclude_id):
        raise DuplicateSku(f"a product with sku {sku!r} already exists")
    barcode = values.get("barcode")
    if barcode is not None and await repository.barcode_taken(session, barcode, exclude_id):
        raise DuplicateBarcode(f"a product with barcode {barcode!r} already exists")


async def create_product(session: AsyncSession, data: ProductCreate, ctx: Context) -> ProductRow:
    """Create a product (sku unique case-insensitively, barcode unique, cost <= sale)."""
    values = data.model_dump()
    _check_prices(data.cost_price, data.sale_price)
    async with translated(), transaction(session):
        await _check_references(session, values)
        await _check_unique(session, values, None)
        product = Product(**values)
        session.add(product)
        await session.flush()
        events.record(
            session,
            "product.created",
            ctx,
            entity=("product", product.id),
            data=snapshot(product, PRODUCT_FIELDS),
        )
        row = await or_404(repository.get_product_row(session, product.id), ProductNotFound)
    return row


async def update_product(
    session: AsyncSession,
    product_id: uuid.UUID,
    data: ProductUpdate,
    if_match: str | None,
    ctx: Context,
) -> ProductRow:
    """Partially update a product, guarded by If-Match (412 when stale)."""
    async with translated(), transaction(session):
        product = await or_404(repository.get_product(session, product_id), ProductNotFound)
        check_if_match(if_match, product.version)
        values = data.model_dump(exclude_unset=True)
        before = snapshot(product, PRODUCT_FIELDS)
        after = before | values
        _check_prices(after["cost_price"], after["sale_price"])
        changed = {k: v for k, v in values.items() if before[k] != v}
        await _check_references(session, changed)
        await _check_unique(session, changed, product.id)
        changes = events.compute_changes(before, after, PRODUCT_FIELDS)
        if changes:
            apply(product, changed)
            await session.flush()
            events.record(
                session, "product.updated", ctx, entity=("product", product.id), changes=changes
            )
        row = await or_404(repository.get_product_row(session, product.id), ProductNotFound)
    return row


async def _set_active(
    session: AsyncSession,
    product_id: uuid.UUID,
    active: bool,
    if_match: str | None,
    ctx: Context,
) -> ProductRow:
    async with translated(), transaction(session):
        product = await or_404(repository.get_product(session, product_id), ProductNotFound)
        check_if_match(if_match, product.version)
        if product.is_active != active:
            product.is_active = active
            await session.flush()
            events.record(
                session,
                "product.restored" if active else "product.deleted",
                ctx,
                entity=("product", product.id),
                changes={"is_active": {"old": not active, "new": active}},
                data={"sku": product.sku, "name": product.name},
            )
        row = await or_404(repository.get_product_row(session, product.id), ProductNotFound)
    return row


async def delete_product(
    session: AsyncSession, product_id: uuid.UUID, if_match: str | None, ctx: Context
) -> None:
    """Soft-delete a product (`is_active=false`); its history stays. Repeating it is a no-op."""
    await _set_active(session, product_id, False, if_match, ctx)


async def restore_product(
    session: AsyncSession, product_id: uuid.UUID, if_match: str | None, ctx: Context
) -> ProductRow:
    """Undo a soft delete (`is_active=true`)."""
    return await _set_active(session, product_id, True, if_match, ctx)
