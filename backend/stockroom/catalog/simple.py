"""Use cases of categories, suppliers and warehouses: what is particular to each (its unique
values, its references, its delete guard), plugged into the shared `SimpleCrud`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog import repository
from stockroom.catalog.crud import SimpleCrud
from stockroom.catalog.errors import (
    CategoryNotFound,
    DuplicateCode,
    DuplicateName,
    InUse,
    SupplierNotFound,
    WarehouseNotFound,
)
from stockroom.catalog.models import Category, Product, Supplier, Warehouse
from stockroom.db.session import transaction
from stockroom.http.errors import ValidationFailed
from stockroom.http.pagination import PageParams, Sort

CATEGORY_FIELDS = ("name", "description", "parent_id")
SUPPLIER_FIELDS = ("name", "email", "phone", "address", "notes", "is_active")
WAREHOUSE_FIELDS = ("code", "name", "address", "is_active")


def _changed(before: dict[str, Any] | None, after: dict[str, Any], *fields: str) -> bool:
    """Whether a create (no `before`) or change sets any of these fields to a new value."""
    return before is None or any(after[f] != before[f] for f in fields)


# Categories


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


async def _check_category(
    session: AsyncSession,
    category_id: uuid.UUID | None,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    # The parent first: a name is unique among the siblings under an existing parent.
    if _changed(before, after, "parent_id"):
        await _check_parent(session, after["parent_id"], category_id)
    if _changed(before, after, "name", "parent_id") and await repository.sibling_name_taken(
        session, after["name"], after["parent_id"], category_id
    ):
        raise DuplicateName("a category with this name already exists under the same parent")


async def _check_category_delete(session: AsyncSession, category_id: uuid.UUID) -> None:
    if await repository.any_row(session, Category.parent_id == category_id):
        raise InUse("the category has subcategories; move or delete them first")
    if await repository.any_row(session, Product.category_id == category_id):
        raise InUse("the category still has products; move them first")


categories = SimpleCrud(
    model=Category,
    kind="category",
    fields=CATEGORY_FIELDS,
    not_found=CategoryNotFound,
    search=(Category.name,),
    check_values=_check_category,
    check_delete=_check_category_delete,
)


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
    if parent_id is not None:
        where = [Category.parent_id == parent_id]
    elif roots_only:
        where = [Category.parent_id.is_(None)]
    else:
        where = []
    return await categories.list(session, where=where, q=q, sort=sort, page=page)


# Suppliers


async def _check_supplier(
    session: AsyncSession,
    supplier_id: uuid.UUID | None,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    if _changed(before, after, "name") and await repository.taken(
        session, Supplier, Supplier.name == after["name"], supplier_id
    ):
        raise DuplicateName("a supplier with this name already exists")


async def _check_supplier_delete(session: AsyncSession, supplier_id: uuid.UUID) -> None:
    if await repository.any_row(session, Product.supplier_id == supplier_id):
        raise InUse("products still refer to this supplier; change them first")


suppliers = SimpleCrud(
    model=Supplier,
    kind="supplier",
    fields=SUPPLIER_FIELDS,
    not_found=SupplierNotFound,
    search=(Supplier.name, Supplier.email),
    check_values=_check_supplier,
    check_delete=_check_supplier_delete,
)


async def list_suppliers(
    session: AsyncSession, *, is_active: bool | None, q: str | None, sort: Sort, page: PageParams
) -> tuple[list[Supplier], int]:
    """Suppliers, optionally only active (or inactive) ones, searched by name or email."""
    where = [] if is_active is None else [Supplier.is_active.is_(is_active)]
    return await suppliers.list(session, where=where, q=q, sort=sort, page=page)


# Warehouses


async def _check_warehouse(
    session: AsyncSession,
    warehouse_id: uuid.UUID | None,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    if _changed(before, after, "code") and await repository.warehouse_code_taken(
        session, after["code"], warehouse_id
    ):
        raise DuplicateCode("a warehouse with this code already exists")


async def _check_warehouse_delete(session: AsyncSession, warehouse_id: uuid.UUID) -> None:
    # Stock at zero with history behind it is left to the foreign keys (409, see SimpleCrud);
    # deactivating the warehouse is the way out.
    if await repository.warehouse_holds_stock(session, warehouse_id):
        raise InUse("the warehouse holds stock; move or write it off first")


warehouses = SimpleCrud(
    model=Warehouse,
    kind="warehouse",
    fields=WAREHOUSE_FIELDS,
    not_found=WarehouseNotFound,
    search=(Warehouse.code, Warehouse.name),
    check_values=_check_warehouse,
    check_delete=_check_warehouse_delete,
)


async def list_warehouses(
    session: AsyncSession, *, is_active: bool | None, q: str | None, sort: Sort, page: PageParams
) -> tuple[list[Warehouse], int]:
    """Warehouses, optionally only active (or inactive) ones, searched by code or name."""
    where = [] if is_active is None else [Warehouse.is_active.is_(is_active)]
    return await warehouses.list(session, where=where, q=q, sort=sort, page=page)


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


# The use cases by name, as the router and the demo seeder call them.
get_category = categories.get
create_category = categories.create
update_category = categories.update
delete_category = categories.delete
get_supplier = suppliers.get
create_supplier = suppliers.create
update_supplier = suppliers.update
delete_supplier = suppliers.delete
get_warehouse = warehouses.get
create_warehouse = warehouses.create
update_warehouse = warehouses.update
delete_warehouse = warehouses.delete
