"""HTTP routes of the catalog domain: categories, suppliers, warehouses and products.

Product responses are chosen per caller: `ProductRead` for everyone, `ProductReadWithCosts`
(adds `cost_price` and `margin`) for callers holding `costs:read`. Both are in the OpenAPI schema.
Product routes with an id use the `uuid` path convertor, so that sibling paths of other routers
(`/products/low-stock`) never match them.
"""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from stockroom.auth.deps import Caller, WriteContext, caller, ensure_permissions, require
from stockroom.auth.permissions import Perm
from stockroom.catalog import exporter, importer, service
from stockroom.catalog.errors import CostColumnRefused
from stockroom.catalog.schemas import (
    CATEGORY_SORTS,
    PRODUCT_SORTS,
    SUPPLIER_SORTS,
    WAREHOUSE_SORTS,
    CategoryCreate,
    CategoryRead,
    CategoryUpdate,
    ImportResult,
    ProductCreate,
    ProductDetail,
    ProductDetailWithCosts,
    ProductFilters,
    ProductRead,
    ProductReadWithCosts,
    ProductUpdate,
    SupplierCreate,
    SupplierRead,
    SupplierUpdate,
    WarehouseCreate,
    WarehouseRead,
    WarehouseUpdate,
    product_detail_model,
    product_read_model,
)
from stockroom.context import Principal
from stockroom.db.session import Session
from stockroom.http.errors import problem_responses
from stockroom.http.etag import IfMatch, set_etag
from stockroom.http.location import location
from stockroom.http.pagination import Page, Pagination, Sort, sort_param
from stockroom.http.params import UtcDateTime
from stockroom.types import SafeText

router = APIRouter()

Reader = Annotated[Principal, Depends(require(Perm.CATALOG_READ))]
Writer = Annotated[Principal, Depends(require(Perm.CATALOG_WRITE))]
# A hot read's one dependency: session, authentication and catalog:read.
ReaderCaller = Annotated[Caller, caller(Perm.CATALOG_READ)]
Search = Annotated[
    SafeText | None,
    Query(min_length=1, max_length=200, description="case-insensitive substring search"),
]
READ_ERRORS = (401, 403, 422)
WRITE_ERRORS = (401, 403, 409, 422)


def _json(
    model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        model.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def _with_etag(response: Response, version: int) -> Response:
    set_etag(response, version)
    return response


# Categories

category_router = APIRouter(prefix="/categories", tags=["categories"])


@category_router.get(
    "",
    response_model=Page[CategoryRead],
    status_code=200,
    responses=problem_responses(*READ_ERRORS),
)
async def list_categories(
    session: Session,
    _: Reader,
    page: Pagination,
    sort: Annotated[Sort, Depends(sort_param(CATEGORY_SORTS, "name"))],
    parent_id: Annotated[uuid.UUID | None, Query(description="children of this category")] = None,
    root: Annotated[bool, Query(description="only top-level categories")] = False,
    q: Search = None,
) -> Page[CategoryRead]:
    """List categories (all, the roots, or the children of one)."""
    items, total = await service.list_categories(
        session, parent_id=parent_id, roots_only=root, q=q, sort=sort, page=page
    )
    return Page.of([CategoryRead.model_validate(c) for c in items], total, page)


@category_router.post(
    "", response_model=CategoryRead, status_code=201, responses=problem_responses(*WRITE_ERRORS)
)
async def create_category(
    data: CategoryCreate,
    session: Session,
    ctx: WriteContext,
    _: Writer,
    request: Request,
    response: Response,
) -> CategoryRead:
    """Create a category (name unique among its siblings)."""
    category = await service.create_category(session, data, ctx)
    response.headers["Location"] = location(request, "get_category", category_id=category.id)
    set_etag(response, category.version)
    return CategoryRead.model_validate(category)


@category_router.get(
    "/{category_id}",
    response_model=CategoryRead,
    status_code=200,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_category(
    category_id: uuid.UUID, session: Session, _: Reader, response: Response
) -> CategoryRead:
    """Get a category (with its ETag)."""
    category = await service.get_category(session, category_id)
    set_etag(response, category.version)
    return CategoryRead.model_validate(category)


@category_router.patch(
    "/{category_id}",
    response_model=CategoryRead,
    status_code=200,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_category(
    category_id: uuid.UUID,
    data: CategoryUpdate,
    session: Session,
    ctx: WriteContext,
    _: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> CategoryRead:
    """Change a category; a parent inside its own subtree is a cycle (422)."""
    category = await service.update_category(session, category_id, data, if_match, ctx)
    set_etag(response, category.version)
    return CategoryRead.model_validate(category)


@category_router.delete(
    "/{category_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def delete_category(
    category_id: uuid.UUID, session: Session, ctx: WriteContext, _: Writer, if_match: IfMatch = None
) -> Response:
    """Delete a category without products or subcategories (else 409)."""
    await service.delete_category(session, category_id, if_match, ctx)
    return Response(status_code=204)


# Suppliers

supplier_router = APIRouter(prefix="/suppliers", tags=["suppliers"])


@supplier_router.get(
    "",
    response_model=Page[SupplierRead],
    status_code=200,
    responses=problem_responses(*READ_ERRORS),
)
async def list_suppliers(
    session: Session,
    _: Reader,
    page: Pagination,
    sort: Annotated[Sort, Depends(sort_param(SUPPLIER_SORTS, "name"))],
    is_active: Annotated[bool | None, Query(description="only active (or inactive) ones")] = None,
    q: Search = None,
) -> Page[SupplierRead]:
    """List suppliers."""
    items, total = await service.list_suppliers(
        session, is_active=is_active, q=q, sort=sort, page=page
    )
    return Page.of([SupplierRead.model_validate(s) for s in items], total, page)


@supplier_router.post(
    "", response_model=SupplierRead, status_code=201, responses=problem_responses(*WRITE_ERRORS)
)
async def create_supplier(
    data: SupplierCreate,
    session: Session,
    ctx: WriteContext,
    _: Writer,
    request: Request,
    response: Response,
) -> SupplierRead:
    """Create a supplier (name unique)."""
    supplier = await service.create_supplier(session, data, ctx)
    response.headers["Location"] = location(request, "get_supplier", supplier_id=supplier.id)
    set_etag(response, supplier.version)
    return SupplierRead.model_validate(supplier)


@supplier_router.get(
    "/{supplier_id}",
    response_model=SupplierRead,
    status_code=200,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_supplier(
    supplier_id: uuid.UUID, session: Session, _: Reader, response: Response
) -> SupplierRead:
    """Get a supplier (with its ETag)."""
    supplier = await service.get_supplier(session, supplier_id)
    set_etag(response, supplier.version)
    return SupplierRead.model_validate(supplier)


@supplier_router.patch(
    "/{supplier_id}",
    response_model=SupplierRead,
    status_code=200,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_supplier(
    supplier_id: uuid.UUID,
    data: SupplierUpdate,
    session: Session,
    ctx: WriteContext,
    _: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> SupplierRead:
    """Change a supplier (`is_active: false`: no new or changed purchase orders for it)."""
    supplier = await service.update_supplier(session, supplier_id, data, if_match, ctx)
    set_etag(response, supplier.version)
    return SupplierRead.model_validate(supplier)


@supplier_router.delete(
    "/{supplier_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def delete_supplier(
    supplier_id: uuid.UUID, session: Session, ctx: WriteContext, _: Writer, if_match: IfMatch = None
) -> Response:
    """Delete a supplier no product refers to (else 409)."""
    await service.delete_supplier(session, supplier_id, if_match, ctx)
    return Response(status_code=204)


# Warehouses

warehouse_router = APIRouter(prefix="/warehouses", tags=["warehouses"])


@warehouse_router.get(
    "",
    response_model=Page[WarehouseRead],
    status_code=200,
    responses=problem_responses(*READ_ERRORS),
)
async def list_warehouses(
    session: Session,
    _: Reader,
    page: Pagination,
    sort: Annotated[Sort, Depends(sort_param(WAREHOUSE_SORTS, "code"))],
    is_active: Annotated[bool | None, Query(description="only active (or inactive) ones")] = None,
    q: Search = None,
) -> Page[WarehouseRead]:
    """List warehouses."""
    items, total = await service.list_warehouses(
        session, is_active=is_active, q=q, sort=sort, page=page
    )
    return Page.of([WarehouseRead.model_validate(w) for w in items], total, page)


@warehouse_router.post(
    "", response_model=WarehouseRead, status_code=201, responses=problem_responses(*WRITE_ERRORS)
)
async def create_warehouse(
    data: WarehouseCreate,
    session: Session,
    ctx: WriteContext,
    _: Writer,
    request: Request,
    response: Response,
) -> WarehouseRead:
    """Create a warehouse (code unique)."""
    warehouse = await service.create_warehouse(session, data, ctx)
    response.headers["Location"] = location(request, "get_warehouse", warehouse_id=warehouse.id)
    set_etag(response, warehouse.version)
    return WarehouseRead.model_validate(warehouse)


@warehouse_router.get(
    "/{warehouse_id}",
    response_model=WarehouseRead,
    status_code=200,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_warehouse(
    warehouse_id: uuid.UUID, session: Session, _: Reader, response: Response
) -> WarehouseRead:
    """Get a warehouse (with its ETag)."""
    warehouse = await service.get_warehouse(session, warehouse_id)
    set_etag(response, warehouse.version)
    return WarehouseRead.model_validate(warehouse)


@warehouse_router.patch(
    "/{warehouse_id}",
    response_model=WarehouseRead,
    status_code=200,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_warehouse(
    warehouse_id: uuid.UUID,
    data: WarehouseUpdate,
    session: Session,
    ctx: WriteContext,
    _: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> WarehouseRead:
    """Change a warehouse (`is_active: false` deactivates it)."""
    warehouse = await service.update_warehouse(session, warehouse_id, data, if_match, ctx)
    set_etag(response, warehouse.version)
    return WarehouseRead.model_validate(warehouse)


@warehouse_router.delete(
    "/{warehouse_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def delete_warehouse(
    warehouse_id: uuid.UUID,
    session: Session,
    ctx: WriteContext,
    _: Writer,
    if_match: IfMatch = None,
) -> Response:
    """Delete a warehouse holding no stock and with no stock history (else 409)."""
    await service.delete_warehouse(session, warehouse_id, if_match, ctx)
    return Response(status_code=204)


# Products

product_router = APIRouter(prefix="/products", tags=["products"])


async def product_filters(
    q: Annotated[
        SafeText | None,
        Query(
            min_length=1,
            max_length=200,
            description="case-insensitive substring of name, sku, description or barcode",
        ),
    ] = None,
    category_id: Annotated[
        uuid.UUID | None, Query(description="this category and all its descendants")
    ] = None,
    supplier_id: uuid.UUID | None = None,
    is_active: Annotated[
        bool | None, Query(description="omit for all products; false lists deleted ones")
    ] = None,
    low_stock: Annotated[
        bool | None, Query(description="true: total on hand <= reorder_point")
    ] = None,
    created_from: Annotated[UtcDateTime | None, Query(description="created at or after")] = None,
    created_to: Annotated[UtcDateTime | None, Query(description="created before")] = None,
) -> ProductFilters:
    return ProductFilters(
        q=q,
        category_id=category_id,
        supplier_id=supplier_id,
        is_active=is_active,
        low_stock=low_stock,
        created_from=created_from,
        created_to=created_to,
    )


Filters = Annotated[ProductFilters, Depends(product_filters)]
ProductSort = Annotated[Sort, Depends(sort_param(PRODUCT_SORTS, "name"))]


# Parametrised once: `Page[Any]` builds a new model class each time it is written.
_AnyPage = Page[Any]


def _can_see_costs(principal: Principal) -> bool:
    return principal.can(Perm.COSTS_READ)


async def _ensure_may_set_costs(
    request: Request, session: Session, principal: Principal, data: BaseModel
) -> None:
    """A caller never sets a cost it may not see: sending `cost_price` needs costs:read."""
    if "cost_price" in data.model_fields_set:
        await ensure_permissions(request, session, principal, Perm.COSTS_READ)


@product_router.get(
    "",
    response_model=Page[ProductReadWithCosts] | Page[ProductRead],
    status_code=200,
    responses=problem_responses(*READ_ERRORS),
)
async def list_products(
    session: Session, principal: Reader, page: Pagination, sort: ProductSort, filters: Filters
) -> Response:
    """List products with total on hand; cost_price and margin only with costs:read."""
    rows, total = await service.list_products(session, filters, sort, page)
    model = product_read_model(_can_see_costs(principal))
    items: list[Any] = [model.model_validate(row) for row in rows]
    return _json(_AnyPage.of(items, total, page))


@product_router.post(
    "",
    response_model=ProductReadWithCosts | ProductRead,
    status_code=201,
    responses=problem_responses(*WRITE_ERRORS),
)
async def create_product(
    request: Request, data: ProductCreate, session: Session, ctx: WriteContext, principal: Writer
) -> Response:
    """Create a product (sku unique case-insensitively; 0 <= cost_price <= sale_price)."""
    await _ensure_may_set_costs(request, session, principal, data)
    row = await service.create_product(session, data, ctx)
    model = product_read_model(_can_see_costs(principal))
    response = _json(
        model.model_validate(row),
        201,
        {"Location": location(request, "get_product", product_id=row["id"])},
    )
    return _with_etag(response, row["version"])


@product_router.post(
    "/import",
    response_model=ImportResult,
    status_code=200,
    responses=problem_responses(401, 403, 413, 422),
)
async def import_products(
    request: Request,
    session: Session,
    ctx: WriteContext,
    principal: Writer,
    file: Annotated[UploadFile, File(description="CSV with a header row; sku, name, sale_price")],
    dry_run: Annotated[bool, Query(description="validate and count only; write nothing")] = False,
) -> ImportResult:
    """Import products from CSV: upsert by sku, all or nothing; 422 lists the bad rows."""
    try:
        return await importer.import_products(
            session,
            file.file,
            ctx,
            dry_run=dry_run,
            can_set_costs=_can_see_costs(principal),
        )
    except CostColumnRefused:
        # Refused (and recorded) like any missing permission; nothing was written.
        await ensure_permissions(request, session, principal, Perm.COSTS_READ)
        raise


@product_router.get(
    "/export",
    response_class=StreamingResponse,
    status_code=200,
    responses={
        200: {"content": {"text/csv": {}}, "description": "the filtered products as CSV"},
        **problem_responses(*READ_ERRORS),
    },
)
async def export_products(
    request: Request, principal: Reader, sort: ProductSort, filters: Filters
) -> StreamingResponse:
    """Stream the filtered products as CSV (same filters as the list)."""
    chunks = exporter.export_products_csv(
        request.app.state.sessionmaker, filters, sort, can_see_costs=_can_see_costs(principal)
    )
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="products.csv"'},
    )


@product_router.get(
    "/{product_id:uuid}",
    response_model=ProductDetailWithCosts | ProductDetail,
    status_code=200,
    responses=problem_responses(401, 403, 404),
)
async def get_product(product_id: uuid.UUID, who: ReaderCaller) -> Response:
    """Get a product with its stock per warehouse and its ETag."""
    row = await service.get_product(who.session, product_id)
    model = product_detail_model(_can_see_costs(who.principal))
    return _with_etag(_json(model.model_validate(row)), row["version"])


@product_router.patch(
    "/{product_id:uuid}",
    response_model=ProductReadWithCosts | ProductRead,
    status_code=200,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_product(
    request: Request,
    product_id: uuid.UUID,
    data: ProductUpdate,
    session: Session,
    ctx: WriteContext,
    principal: Writer,
    if_match: IfMatch = None,
) -> Response:
    """Partially update a product; a stale If-Match is 412."""
    await _ensure_may_set_costs(request, session, principal, data)
    row = await service.update_product(session, product_id, data, if_match, ctx)
    model = product_read_model(_can_see_costs(principal))
    return _with_etag(_json(model.model_validate(row)), row["version"])


@product_router.delete(
    "/{product_id:uuid}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 412),
)
async def delete_product(
    product_id: uuid.UUID, session: Session, ctx: WriteContext, _: Writer, if_match: IfMatch = None
) -> Response:
    """Soft-delete a product (is_active=false); its history stays."""
    await service.delete_product(session, product_id, if_match, ctx)
    return Response(status_code=204)


@product_router.post(
    "/{product_id:uuid}/restore",
    response_model=ProductReadWithCosts | ProductRead,
    status_code=200,
    responses=problem_responses(401, 403, 404, 412),
)
async def restore_product(
    product_id: uuid.UUID,
    session: Session,
    ctx: WriteContext,
    principal: Writer,
    if_match: IfMatch = None,
) -> Response:
    """Restore a soft-deleted product (is_active=true)."""
    row = await service.restore_product(session, product_id, if_match, ctx)
    model = product_read_model(_can_see_costs(principal))
    return _with_etag(_json(model.model_validate(row)), row["version"])


router.include_router(category_router)
router.include_router(supplier_router)
router.include_router(warehouse_router)
router.include_router(product_router)
