"""HTTP routes of the activity domain: the activity log, its export, and the dashboards."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from stockroom.activity import service
from stockroom.activity.cursor import CURSOR_PATTERN
from stockroom.activity.errors import EventStoreUnavailable
from stockroom.activity.schemas import (
    ActivityBucket,
    ActivityPage,
    Bucket,
    DashboardSummary,
    EventFilter,
    ExportFormat,
    StockFlowBucket,
    TopActor,
)
from stockroom.auth.deps import AppSettings, require
from stockroom.auth.permissions import Perm
from stockroom.context import Principal
from stockroom.db.session import Session
from stockroom.http.errors import problem_responses
from stockroom.http.params import UtcDateTime
from stockroom.types import SafeText

router = APIRouter(tags=["activity"])

AuditReader = Annotated[Principal, Depends(require(Perm.AUDIT_READ))]
_READ_ERRORS = problem_responses(401, 403, 422, 503)


def get_event_collection(request: Request) -> Any:
    """The `activity_events` collection of the app's event store."""
    store = getattr(request.app.state, "event_store", None)
    if store is None:
        raise EventStoreUnavailable()
    return store.collection


def get_export_batch_size(request: Request) -> int:
    # The in-process store scans every event for each query, so it reads bigger batches (fewer
    # scans); MongoDB answers each batch from an index, so small batches cost nothing there.
    store = getattr(request.app.state, "event_store", None)
    if getattr(store, "in_process", False):
        return service.IN_PROCESS_EXPORT_BATCH_SIZE
    return service.EXPORT_BATCH_SIZE


EventCollection = Annotated[Any, Depends(get_event_collection)]
ExportBatchSize = Annotated[int, Depends(get_export_batch_size)]


def event_filter(
    type: Annotated[
        SafeText | None,
        Query(
            max_length=100,
            description="an exact event type (`product.created`) or a prefix with `*` (`stock.*`)",
        ),
    ] = None,
    actor_id: Annotated[uuid.UUID | None, Query(description="events caused by this user")] = None,
    entity_type: Annotated[
        SafeText | None, Query(max_length=50, description="events about this kind of entity")
    ] = None,
    entity_id: Annotated[uuid.UUID | None, Query(description="events about this entity")] = None,
    occurred_from: Annotated[
        UtcDateTime | None,
        Query(
            alias="from",
            description="inclusive; ISO 8601, UTC if no offset; before `to` (else 422 "
            "`invalid_filter`)",
        ),
    ] = None,
    occurred_to: Annotated[
        UtcDateTime | None, Query(alias="to", description="exclusive; ISO 8601, UTC if no offset")
    ] = None,
) -> EventFilter:
    return EventFilter(
        type=type,
        actor_id=actor_id,
        entity_type=entity_type,
        entity_id=entity_id,
        occurred_from=occurred_from,
        occurred_to=occurred_to,
    )


Filters = Annotated[EventFilter, Depends(event_filter)]
# The window's rules are stated where a client reads them: schemathesis and generated clients
# see the parameters, and no JSON Schema can compare two of them.
From = Annotated[
    UtcDateTime | None,
    Query(
        alias="from",
        description="inclusive; ISO 8601, UTC if no offset; before `to`, and the window at most "
        f"{service.MAX_RANGE[Bucket.HOUR].days} days with hourly buckets, "
        f"{service.MAX_RANGE[Bucket.DAY].days} days with daily ones (else 422 `invalid_filter`)",
    ),
]
To = Annotated[
    UtcDateTime | None,
    Query(alias="to", description="exclusive; ISO 8601, UTC if no offset; default now"),
]


@router.get(
    "/activity",
    response_model=ActivityPage,
    status_code=200,
    responses=_READ_ERRORS,
)
async def list_activity(
    collection: EventCollection,
    filters: Filters,
    settings: AppSettings,
    principal: AuditReader,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_LIMIT)] = 50,
    cursor: Annotated[
        SafeText | None,
        Query(
            max_length=512,
            description="`next_cursor` of the previous page, with the same filters",
            # Documented, not enforced by FastAPI: any cursor the server did not issue is
            # refused alike, as 422 `invalid_cursor`.
            json_schema_extra={"pattern": CURSOR_PATTERN},
        ),
    ] = None,
) -> ActivityPage:
    """List activity events, newest first, with cursor pagination."""
    return await service.list_activity(
        collection,
        filters,
        cursor=cursor,
        limit=limit,
        secret_key=settings.secret_key,
        show_costs=principal.can(Perm.COSTS_READ),
    )


@router.get(
    "/activity/export",
    status_code=200,
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "every matching event, newest first, streamed",
            "content": {"application/x-ndjson": {}, "text/csv": {}},
        },
        **_READ_ERRORS,
    },
)
async def export_activity(
    collection: EventCollection,
    filters: Filters,
    principal: AuditReader,
    batch_size: ExportBatchSize,
    format: Annotated[ExportFormat, Query(description="ndjson or csv")] = ExportFormat.NDJSON,
) -> StreamingResponse:
    """Export the filtered activity events as NDJSON or CSV (streamed, any size)."""
    chunks = await service.open_export(
        collection,
        filters,
        format,
        show_costs=principal.can(Perm.COSTS_READ),
        batch_size=batch_size,
    )
    media_type = (
        "text/csv; charset=utf-8"
        if format is ExportFormat.CSV
        else "application/x-ndjson; charset=utf-8"
    )
    filename = service.export_filename(format)
    return StreamingResponse(
        chunks,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/dashboard/summary",
    response_model=DashboardSummary,
    status_code=200,
    responses=problem_responses(401, 403, 503),
)
async def dashboard_summary(
    collection: EventCollection, session: Session, _: AuditReader
) -> DashboardSummary:
    """Headline numbers for the admin dashboard ("today" is the UTC day)."""
    return await service.summary(collection, session)


@router.get(
    "/dashboard/activity",
    response_model=list[ActivityBucket],
    status_code=200,
    responses=_READ_ERRORS,
)
async def dashboard_activity(
    collection: EventCollection,
    _: AuditReader,
    occurred_from: From = None,
    occurred_to: To = None,
    bucket: Annotated[Bucket, Query(description="UTC hours or UTC days")] = Bucket.HOUR,
) -> list[ActivityBucket]:
    """Events per UTC hour or day and type (only non-empty buckets)."""
    return await service.activity_buckets(collection, occurred_from, occurred_to, bucket)


@router.get(
    "/dashboard/stock-flow",
    response_model=list[StockFlowBucket],
    status_code=200,
    responses=_READ_ERRORS,
)
async def dashboard_stock_flow(
    collection: EventCollection,
    session: Session,
    _: AuditReader,
    occurred_from: From = None,
    occurred_to: To = None,
    bucket: Annotated[Bucket, Query(description="UTC days (or hours)")] = Bucket.DAY,
    warehouse_id: uuid.UUID | None = None,
) -> list[StockFlowBucket]:
    """Units into and out of each warehouse per UTC day, from stock movement events."""
    return await service.stock_flow(
        collection, session, occurred_from, occurred_to, bucket, warehouse_id
    )


@router.get(
    "/dashboard/top-actors",
    response_model=list[TopActor],
    status_code=200,
    responses=_READ_ERRORS,
)
async def dashboard_top_actors(
    collection: EventCollection,
    _: AuditReader,
    occurred_from: From = None,
    occurred_to: To = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[TopActor]:
    """The users with the most events in the range (default: the last 30 days)."""
    return await service.top_actors(collection, occurred_from, occurred_to, limit)
