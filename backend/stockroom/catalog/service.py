"""Use cases of the catalog domain: one function each, one transaction each, events recorded
in the same transaction as the change they describe."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from stockroom import events
from stockroom.catalog import repository
from stockroom.catalog.errors import (
    CategoryNotFound,
    DuplicateBarcode,
    DuplicateCode,
    DuplicateName,
    DuplicateSku,
    InUse,
    ProductNotFound,
    SupplierNotFound,
    WarehouseNotFound,
)
from stockroom.catalog.models import Category, Product, Supplier, Warehouse
from stockroom.catalog.schemas import (
    CategoryCreate,
    CategoryUpdate,
    ProductCreate,
    ProductFilters,
    ProductUpdate,
    SupplierCreate,
    SupplierUpdate,
    WarehouseCreate,
    WarehouseUpdate,
)
from stockroom.context import Context
from stockroom.db.session import single_statement, transaction
from stockroom.http.errors import AppError, Conflict, PreconditionFailed, ValidationFailed
from stockroom.http.etag import check_if_match
from stockroom.http.pagination import PageParams, Sort

T = TypeVar("T")
ProductRow = dict[str, Any]

CATEGORY_FIELDS = ("name", "description", "parent_id")
SUPPLIER_FIELDS = ("name", "email", "phone", "address", "notes", "is_active")
WAREHOUSE_FIELDS = ("code", "name", "address", "is_active")
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

_UNIQUE_CONFLICTS: dict[str, Callable[[], AppError]] = {
    "uq_products_sku_lower": DuplicateSku,
    "uq_products_barcode": DuplicateBarcode,
    "uq_categories_parent_id_name": lambda: DuplicateName(
        "a category with this name already exists under the same parent"
    ),
    "uq_suppliers_name": lambda: DuplicateName("a supplier with this name already exists"),
    "uq_warehouses_code": lambda: DuplicateCode("a warehouse with this code already exists"),
}


def integrity_error(exc: IntegrityError, *, deleting: bool = False) -> AppError:
    """The client-facing error for a constraint the database enforced (a race we lost)."""
    return integrity_error_of_constraint(repository.constraint_of(exc), deleting=deleting)


def integrity_error_of_constraint(constraint: str, *, deleting: bool = False) -> AppError:
    """The client-facing error for the named constraint (or an error message naming it)."""
    for name, make in _UNIQUE_CONFLICTS.items():
        if name in constraint:
            return make()
    if "fk_" in constraint:
        if deleting:
            return InUse("the resource is still referenced and cannot be deleted")
        return ValidationFailed("a referenced resource no longer exists")
    if "ck_" in constraint:
        return ValidationFailed("a value breaks a rule of the resource")
    return Conflict()


@asynccontextmanager
async def _translated(*, deleting: bool = False) -> AsyncIterator[None]:
    """Database-enforced rules as problem details: constraint names to 409/422, a lost
    optimistic-concurrency race (version changed under us) to 412."""
    try:
        yield
    except IntegrityError as exc:
        raise integrity_error(exc, deleting=deleting) from None
    except StaleDataError:
        raise PreconditionFailed() from None


def _snapshot(entity: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {field: getattr(entity, field) for field in fields}


def _apply(entity: Any, values: dict[str, Any]) -> None:
    for field, value in values.items():
        setattr(entity, field, value)


async def _or_404(found: Awaitable[T | None], error: type[AppError]) -> T:
    value = await found
    if value is None:
        raise error()
    return value


# Categories


async def list_categories(
    session: AsyncSession,
    *,
    parent_id: uuid.UUID | None,
    roots_only: bool,
    q: str | None,
    sort: Sort,
    page: PageParams,
) -> tuple[list[Category], int]:
    """Categories, optionally the children of one parent or only the roots."""
    async with transaction(session):
        return await repository.list_categories(
            session,
            parent_id=parent_id,
            roots_only=roots_only,
            q=q,
            sort=sort,
            offset=page.offset,
            limit=page.limit,
        )


async def get_category(session: AsyncSession, category_id: uuid.UUID) -> Category:
    """One category."""
    async with transaction(session):
        return await _or_404(repository.get_category(session, category_id), CategoryNotFound)


async def _check_parent(
    session: AsyncSession, parent_id: uuid.UUID | None, category_id: uuid.UUID | None
) -> None:
    if parent_id is None:
        return
    if await repository.get_category(session, parent_id) is None:
        raise ValidationFailed.at(["body", "parent_id"], "no such category", "not_found")
    if category_id is not None and await repository.is_in_subtree(session, category_id, parent_id):
        raise ValidationFailed.at(
            ["body", "parent_id"],
            "a category cannot be moved under itself or one of its descendants",
            "category_cycle",
        )


async def create_category(session: AsyncSession, data: CategoryCreate, ctx: Context) -> Category:
    """Create a category; its name must be unique among its siblings."""
    async with _translated(), transaction(session):
        await _check_parent(session, data.parent_id, None)
        if await repository.sibling_name_taken(session, data.name, data.parent_id, None):
            raise DuplicateName("a category with this name already exists under the same parent")
        category = Category(**data.model_dump())
        session.add(category)
        await session.flush()
        events.record(
            session,
            "category.created",
            ctx,
            entity=("category", category.id),
            data=_snapshot(category, CATEGORY_FIELDS),
        )
    return category


async def update_category(
    session: AsyncSession,
    category_id: uuid.UUID,
    data: CategoryUpdate,
    if_match: str | None,
    ctx: Context,
) -> Category:
    """Change a category; moving it under its own subtree is refused (422)."""
    async with _translated(), transaction(session):
        category = await _or_404(repository.get_category(session, category_id), CategoryNotFound)
        check_if_match(if_match, category.version)
        values = data.model_dump(exclude_unset=True)
        before = _snapshot(category, CATEGORY_FIELDS)
        after = before | values
        if after["parent_id"] != before["parent_id"]:
            await _check_parent(session, after["parent_id"], category.id)
        if (after["name"], after["parent_id"]) != (
            before["name"],
            before["parent_id"],
        ) and await repository.sibling_name_taken(
            session, after["name"], after["parent_id"], category.id
        ):
            raise DuplicateName("a category with this name already exists under the same parent")
        changes = events.compute_changes(before, after, CATEGORY_FIELDS)
        if changes:
            _apply(category, values)
            await session.flush()
            events.record(
                session, "category.updated", ctx, entity=("category", category.id), changes=changes
            )
    return category


async def delete_category(
    session: AsyncSession, category_id: uuid.UUID, if_match: str | None, ctx: Context
) -> None:
    """Delete a category that has neither children nor products (else 409)."""
    async with _translated(deleting=True), transaction(session):
        category = await _or_404(repository.get_category(session, category_id), CategoryNotFound)
        check_if_match(if_match, category.version)
        if await repository.category_has_children(session, category_id):
            raise InUse("the category has subcategories; move or delete them first")
        if await repository.category_has_products(session, category_id):
            raise InUse("the category still has products; move them first")
        snapshot = _snapshot(category, CATEGORY_FIELDS)
        await session.delete(category)
        await session.flush()
        events.record(
            session, "category.deleted", ctx, entity=("category", category_id), data=snapshot
        )


# Suppliers


async def list_suppliers(
    session: AsyncSession, *, is_active: bool | None, q: str | None, sort: Sort, page: PageParams
) -> tuple[list[Supplier], int]:
    """Suppliers, optionally only active (or inactive) ones, searched by name or email."""
    async with transaction(session):
        return await repository.list_suppliers(
            session, is_active=is_active, q=q, sort=sort, offset=page.offset, limit=page.limit
        )


async def get_supplier(session: AsyncSession, supplier_id: uuid.UUID) -> Supplier:
    """One supplier."""
    async with transaction(session):
        return await _or_404(repository.get_supplier(session, supplier_id), SupplierNotFound)


async def create_supplier(session: AsyncSession, data: SupplierCreate, ctx: Context) -> Supplier:
    """Create a supplier; names are unique."""
    async with _translated(), transaction(session):
        if await repository.supplier_name_taken(session, data.name, None):
            raise DuplicateName("a supplier with this name already exists")
        supplier = Supplier(**data.model_dump())
        session.add(supplier)
        await session.flush()
        events.record(
            session,
            "supplier.created",
            ctx,
            entity=("supplier", supplier.id),
            data=_snapshot(supplier, SUPPLIER_FIELDS),
        )
    return supplier


async def update_supplier(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    data: SupplierUpdate,
    if_match: str | None,
    ctx: Context,
) -> Supplier:
    """Change a supplier."""
    async with _translated(), transaction(session):
        supplier = await _or_404(repository.get_supplier(session, supplier_id), SupplierNotFound)
        check_if_match(if_match, supplier.version)
        values = data.model_dump(exclude_unset=True)
        before = _snapshot(supplier, SUPPLIER_FIELDS)
        after = before | values
        if after["name"] != before["name"] and await repository.supplier_name_taken(
            session, after["name"], supplier.id
        ):
            raise DuplicateName("a supplier with this name already exists")
        changes = events.compute_changes(before, after, SUPPLIER_FIELDS)
        if changes:
            _apply(supplier, values)
            await session.flush()
            events.record(
                session, "supplier.updated", ctx, entity=("supplier", supplier.id), changes=changes
            )
    return supplier


async def delete_supplier(
    session: AsyncSession, supplier_id: uuid.UUID, if_match: str | None, ctx: Context
) -> None:
    """Delete a supplier no product refers to (else 409)."""
    async with _translated(deleting=True), transaction(session):
        supplier = await _or_404(repository.get_supplier(session, supplier_id), SupplierNotFound)
        check_if_match(if_match, supplier.version)
        if await repository.supplier_has_products(session, supplier_id):
            raise InUse("products still refer to this supplier; change them first")
        snapshot = _snapshot(supplier, SUPPLIER_FIELDS)
        await session.delete(supplier)
        await session.flush()
        events.record(
            session, "supplier.deleted", ctx, entity=("supplier", supplier_id), data=snapshot
        )


# Warehouses


async def list_warehouses(
    session: AsyncSession,
    *,
    is_active: bool | None,
    q: str | None,
    sort: Sort,
    page: PageParams,
) -> tuple[list[Warehouse], int]:
    """Warehouses, optionally only active (or inactive) ones."""
    async with transaction(session):
        return await repository.list_warehouses(
            session, is_active=is_active, q=q, sort=sort, offset=page.offset, limit=page.limit
        )


async def get_warehouse(session: AsyncSession, warehouse_id: uuid.UUID) -> Warehouse:
    """One warehouse."""
    async with transaction(session):
        return await _or_404(repository.get_warehouse(session, warehouse_id), WarehouseNotFound)


async def warehouse_code_in_use(session: AsyncSession, code: str) -> bool:
    """Whether a warehouse already has this code (compared case-insensitively)."""
    async with transaction(session):
        return await repository.warehouse_code_taken(session, code, None)


async def warehouse_codes(session: AsyncSession, warehouse_ids: Sequence[str]) -> dict[str, str]:
    """The codes of the warehouses with these ids (ids that are not UUIDs, or of warehouses
    deleted since, are left out)."""
    ids: list[uuid.UUID] = []
    for value in warehouse_ids:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    if not ids:
        return {}
    async with transaction(session):
        codes = await repository.warehouse_codes(session, ids)
    return {str(warehouse_id): code for warehouse_id, code in codes.items()}


async def create_warehouse(session: AsyncSession, data: WarehouseCreate, ctx: Context) -> Warehouse:
    """Create a warehouse; codes are unique (case-insensitively)."""
    async with _translated(), transaction(session):
        if await repository.warehouse_code_taken(session, data.code, None):
            raise DuplicateCode("a warehouse with this code already exists")
        warehouse = Warehouse(**data.model_dump())
        session.add(warehouse)
        await session.flush()
        events.record(
            session,
            "warehouse.created",
            ctx,
            entity=("warehouse", warehouse.id),
            data=_snapshot(warehouse, WAREHOUSE_FIELDS),
        )
    return warehouse


async def update_warehouse(
    session: AsyncSession,
    warehouse_id: uuid.UUID,
    data: WarehouseUpdate,
    if_match: str | None,
    ctx: Context,
) -> Warehouse:
    """Change a warehouse (deactivate it with `is_active: false`)."""
    async with _translated(), transaction(session):
        warehouse = await _or_404(
            repository.get_warehouse(session, warehouse_id), WarehouseNotFound
        )
        check_if_match(if_match, warehouse.version)
        values = data.model_dump(exclude_unset=True)
        before = _snapshot(warehouse, WAREHOUSE_FIELDS)
        after = before | values
        if after["code"] != before["code"] and await repository.warehouse_code_taken(
            session, after["code"], warehouse.id
        ):
            raise DuplicateCode("a warehouse with this code already exists")
        changes = events.compute_changes(before, after, WAREHOUSE_FIELDS)
        if changes:
            _apply(warehouse, values)
            await session.flush()
            events.record(
                session,
                "warehouse.updated",
                ctx,
                entity=("warehouse", warehouse.id),
                changes=changes,
            )
    return warehouse


async def delete_warehouse(
    session: AsyncSession, warehouse_id: uuid.UUID, if_match: str | None, ctx: Context
) -> None:
    """Delete a warehouse holding no stock (on hand or in transit); else 409."""
    async with _translated(deleting=True), transaction(session):
        warehouse = await _or_404(
            repository.get_warehouse(session, warehouse_id), WarehouseNotFound
        )
        check_if_match(if_match, warehouse.version)
        if await repository.warehouse_holds_stock(session, warehouse_id):
            raise InUse("the warehouse holds stock; move or write it off first")
        snapshot = _snapshot(warehouse, WAREHOUSE_FIELDS)
        await session.delete(warehouse)
        # A warehouse with stock history (levels at zero, movements) is kept by the foreign
        # keys: that surfaces as 409 through _translated, and deactivating it is the way out.
        await session.flush()
        events.record(
            session, "warehouse.deleted", ctx, entity=("warehouse", warehouse_id), data=snapshot
        )


# Products


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
        return await _or_404(repository.get_product_detail(session, product_id), ProductNotFound)


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
    async with _translated(), transaction(session):
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
            data=_snapshot(product, PRODUCT_FIELDS),
        )
        row = await _or_404(repository.get_product_row(session, product.id), ProductNotFound)
    return row


async def update_product(
    session: AsyncSession,
    product_id: uuid.UUID,
    data: ProductUpdate,
    if_match: str | None,
    ctx: Context,
) -> ProductRow:
    """Partially update a product, guarded by If-Match (412 when stale)."""
    async with _translated(), transaction(session):
        product = await _or_404(repository.get_product(session, product_id), ProductNotFound)
        check_if_match(if_match, product.version)
        values = data.model_dump(exclude_unset=True)
        before = _snapshot(product, PRODUCT_FIELDS)
        after = before | values
        _check_prices(after["cost_price"], after["sale_price"])
        changed = {k: v for k, v in values.items() if before[k] != v}
        await _check_references(session, changed)
        await _check_unique(session, changed, product.id)
        changes = events.compute_changes(before, after, PRODUCT_FIELDS)
        if changes:
            _apply(product, changed)
            await session.flush()
            events.record(
                session, "product.updated", ctx, entity=("product", product.id), changes=changes
            )
        row = await _or_404(repository.get_product_row(session, product.id), ProductNotFound)
    return row


async def _set_active(
    session: AsyncSession,
    product_id: uuid.UUID,
    active: bool,
    if_match: str | None,
    ctx: Context,
) -> ProductRow:
    async with _translated(), transaction(session):
        product = await _or_404(repository.get_product(session, product_id), ProductNotFound)
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
        row = await _or_404(repository.get_product_row(session, product.id), ProductNotFound)
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
