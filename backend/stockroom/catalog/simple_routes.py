"""HTTP routes of categories, suppliers and warehouses.

The three have the same five routes, registered in this order by `add_simple_routes`: list
(`GET ""`), create (`POST ""`), get, change and delete (`/{<entity>_id}`). What is particular to
each is declared once below: its name, schemas, sorts, use cases (`simple.SimpleCrud` and its
list) and the docs of its routes, and, written out as a dependency, the query filters of its
list. FastAPI sees what it would see had each route been written out: the handler names
(`create_category`: the operation ids and summaries), the docs, the `{category_id}` path
parameter, the parameters in the same order, the body and response models.

No `from __future__ import annotations`: FastAPI reads the annotations of the generated handlers
when they are registered, and those name this function's locals.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from stockroom.auth.deps import WriteContext
from stockroom.catalog import service
from stockroom.catalog.crud import SimpleCrud
from stockroom.catalog.route_helpers import READ_ERRORS, WRITE_ERRORS, Reader, Search, Writer
from stockroom.catalog.schemas import (
    CATEGORY_SORTS,
    SUPPLIER_SORTS,
    WAREHOUSE_SORTS,
    CategoryCreate,
    CategoryRead,
    CategoryUpdate,
    SupplierCreate,
    SupplierRead,
    SupplierUpdate,
    WarehouseCreate,
    WarehouseRead,
    WarehouseUpdate,
)
from stockroom.db.session import Session
from stockroom.http.errors import problem_responses
from stockroom.http.etag import IfMatch, set_etag
from stockroom.http.location import location
from stockroom.http.pagination import Page, Pagination, Sort, sort_param

ReadT = TypeVar("ReadT", bound=BaseModel)

# The statuses of the routes on one entity (`/{category_id}`).
GET_ERRORS = (401, 403, 404, 422)
CHANGE_ERRORS = (401, 403, 404, 409, 412, 422)

# A list's filters: the keyword arguments of the entity's list use case besides the session,
# the sort and the page (`parent_id=..., roots_only=..., q=...` for categories).
Filters = dict[str, Any]
ListUseCase = Callable[..., Awaitable[tuple[Sequence[Any], int]]]


@dataclass(frozen=True, slots=True)
class SimpleDocs:
    """The description of each route, as its docstring would be."""

    list: str
    create: str
    get: str
    update: str
    delete: str


@dataclass(frozen=True, slots=True)
class SimpleRoutes(Generic[ReadT]):
    """What one entity's five routes are made of."""

    entity: str  # `category`: handlers `list_categories`, `create_category` ..., `category_id`
    plural: str
    read: type[ReadT]
    page: type[Page[ReadT]]  # `Page[CategoryRead]`, the list's response model
    create: type[BaseModel]
    update: type[BaseModel]
    sort: Callable[..., Awaitable[Sort]]  # `sort_param(...)`: the sorts its list accepts
    crud: SimpleCrud[Any]
    list: ListUseCase
    filters: Callable[..., Awaitable[Filters]]  # a dependency: the list's own query parameters
    docs: SimpleDocs


def _with_body(handler: Callable[..., Any], model: type[BaseModel]) -> Callable[..., Any]:
    """The handler with its `data` annotated as the entity's model: FastAPI reads the body model
    from the annotation, which in the source can only be the common base class."""
    handler.__annotations__["data"] = model
    return handler


def add_simple_routes(router: APIRouter, spec: SimpleRoutes[ReadT]) -> None:
    """Register the entity's list, create, get, change and delete routes, in this order."""
    entity, read = spec.entity, spec.read
    id_name = f"{entity}_id"
    # The handlers take the id as `entity_id`; the path and the OpenAPI document name it
    # `category_id` (and a bad one is a 422 at `["path", "category_id"]`).
    EntityId = Annotated[uuid.UUID, Path(alias=id_name)]

    async def list_entities(
        session: Session,
        _: Reader,
        # The filters before page and sort: the order of the parameters in the OpenAPI document.
        filters: Annotated[Filters, Depends(spec.filters)],
        page: Pagination,
        sort: Annotated[Sort, Depends(spec.sort)],
    ) -> Page[ReadT]:
        items, total = await spec.list(session, **filters, sort=sort, page=page)
        return spec.page.of([read.model_validate(item) for item in items], total, page)

    async def create(
        data: BaseModel,
        session: Session,
        ctx: WriteContext,
        _: Writer,
        request: Request,
        response: Response,
    ) -> ReadT:
        created = await spec.crud.create(session, data, ctx)
        response.headers["Location"] = location(request, f"get_{entity}", **{id_name: created.id})
        set_etag(response, created.version)
        return read.model_validate(created)

    async def get(entity_id: EntityId, session: Session, _: Reader, response: Response) -> ReadT:
        found = await spec.crud.get(session, entity_id)
        set_etag(response, found.version)
        return read.model_validate(found)

    async def update(
        entity_id: EntityId,
        data: BaseModel,
        session: Session,
        ctx: WriteContext,
        _: Writer,
        response: Response,
        if_match: IfMatch = None,
    ) -> ReadT:
        changed = await spec.crud.update(session, entity_id, data, if_match, ctx)
        set_etag(response, changed.version)
        return read.model_validate(changed)

    async def delete(
        entity_id: EntityId,
        session: Session,
        ctx: WriteContext,
        _: Writer,
        if_match: IfMatch = None,
    ) -> Response:
        await spec.crud.delete(session, entity_id, if_match, ctx)
        return Response(status_code=204)

    router.add_api_route(
        "",
        list_entities,
        methods=["GET"],
        name=f"list_{spec.plural}",
        description=spec.docs.list,
        response_model=spec.page,
        status_code=200,
        responses=problem_responses(*READ_ERRORS),
    )
    router.add_api_route(
        "",
        _with_body(create, spec.create),
        methods=["POST"],
        name=f"create_{entity}",
        description=spec.docs.create,
        response_model=read,
        status_code=201,
        responses=problem_responses(*WRITE_ERRORS),
    )
    item = f"/{{{id_name}}}"
    router.add_api_route(
        item,
        get,
        methods=["GET"],
        name=f"get_{entity}",
        description=spec.docs.get,
        response_model=read,
        status_code=200,
        responses=problem_responses(*GET_ERRORS),
    )
    router.add_api_route(
        item,
        _with_body(update, spec.update),
        methods=["PATCH"],
        name=f"update_{entity}",
        description=spec.docs.update,
        response_model=read,
        status_code=200,
        responses=problem_responses(*CHANGE_ERRORS),
    )
    router.add_api_route(
        item,
        delete,
        methods=["DELETE"],
        name=f"delete_{entity}",
        description=spec.docs.delete,
        status_code=204,
        response_class=Response,
        responses=problem_responses(*CHANGE_ERRORS),
    )


# The list filters of each entity, its own query parameters (`q` last, as in the document).

Active = Annotated[bool | None, Query(description="only active (or inactive) ones")]


async def category_filters(
    parent_id: Annotated[uuid.UUID | None, Query(description="children of this category")] = None,
    root: Annotated[bool, Query(description="only top-level categories")] = False,
    q: Search = None,
) -> Filters:
    return {"parent_id": parent_id, "roots_only": root, "q": q}


async def active_filters(is_active: Active = None, q: Search = None) -> Filters:
    """Suppliers' and warehouses' filters: only active (or inactive) ones, and `?q=`."""
    return {"is_active": is_active, "q": q}


category_router = APIRouter(prefix="/categories", tags=["categories"])
add_simple_routes(
    category_router,
    SimpleRoutes(
        entity="category",
        plural="categories",
        read=CategoryRead,
        page=Page[CategoryRead],
        create=CategoryCreate,
        update=CategoryUpdate,
        sort=sort_param(CATEGORY_SORTS, "name"),
        crud=service.categories,
        list=service.list_categories,
        filters=category_filters,
        docs=SimpleDocs(
            list="List categories (all, the roots, or the children of one).",
            create="Create a category (name unique among its siblings).",
            get="Get a category (with its ETag).",
            update="Change a category; a parent inside its own subtree is a cycle (422).",
            delete="Delete a category without products or subcategories (else 409).",
        ),
    ),
)

supplier_router = APIRouter(prefix="/suppliers", tags=["suppliers"])
add_simple_routes(
    supplier_router,
    SimpleRoutes(
        entity="supplier",
        plural="suppliers",
        read=SupplierRead,
        page=Page[SupplierRead],
        create=SupplierCreate,
        update=SupplierUpdate,
        sort=sort_param(SUPPLIER_SORTS, "name"),
        crud=service.suppliers,
        list=service.list_suppliers,
        filters=active_filters,
        docs=SimpleDocs(
            list="List suppliers.",
            create="Create a supplier (name unique).",
            get="Get a supplier (with its ETag).",
            update=(
                "Change a supplier (`is_active: false`: no new or changed purchase orders for it)."
            ),
            delete="Delete a supplier no product refers to (else 409).",
        ),
    ),
)

warehouse_router = APIRouter(prefix="/warehouses", tags=["warehouses"])
add_simple_routes(
    warehouse_router,
    SimpleRoutes(
        entity="warehouse",
        plural="warehouses",
        read=WarehouseRead,
        page=Page[WarehouseRead],
        create=WarehouseCreate,
        update=WarehouseUpdate,
        sort=sort_param(WAREHOUSE_SORTS, "code"),
        crud=service.warehouses,
        list=service.list_warehouses,
        filters=active_filters,
        docs=SimpleDocs(
            list="List warehouses.",
            create="Create a warehouse (code unique).",
            get="Get a warehouse (with its ETag).",
            update="Change a warehouse (`is_active: false` deactivates it).",
            delete="Delete a warehouse holding no stock and with no stock history (else 409).",
        ),
    ),
)
