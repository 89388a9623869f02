"""HTTP routes of products: list, create, CSV import and export, get, change, delete, restore.

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

from stockroom.auth.deps import Caller, WriteContext, caller, ensure_permissions
from stockroom.auth.permissions import Perm
from stockroom.catalog import exporter, importer, service
from stockroom.catalog.errors import CostColumnRefused
from stockroom.catalog.route_helpers import READ_ERRORS, WRITE_ERRORS, Reader, Writer
from stockroom.catalog.schemas import (
    PRODUCT_SORTS,
    ImportResult,
    ProductCreate,
    ProductDetail,
    ProductDetailWithCosts,
    ProductFilters,
    ProductRead,
    ProductReadWithCosts,
    ProductUpdate,
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

# A hot read's one dependency: session, authentication and catalog:read.
ReaderCaller = Annotated[Caller, caller(Perm.CATALOG_READ)]


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
