"""Use cases of the activity log and the dashboards.

Functions take the event-store collection as an argument (the router passes
`app.state.event_store.collection`), so they run the same against MongoDB and the in-process store.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from stockroom.activity import repository
from stockroom.activity.cursor import decode_cursor, encode_cursor

# The dashboards live in `dashboards`; re-exported where the router and tests find them.
from stockroom.activity.dashboards import DEFAULT_RANGE as DEFAULT_RANGE
from stockroom.activity.dashboards import MAX_RANGE as MAX_RANGE
from stockroom.activity.dashboards import TOP_ACTORS_DEFAULT_RANGE as TOP_ACTORS_DEFAULT_RANGE
from stockroom.activity.dashboards import EventFigures as EventFigures
from stockroom.activity.dashboards import TimeRange as TimeRange
from stockroom.activity.dashboards import activity_buckets as activity_buckets
from stockroom.activity.dashboards import event_figures as event_figures
from stockroom.activity.dashboards import resolve_range as resolve_range
from stockroom.activity.dashboards import stock_flow as stock_flow
from stockroom.activity.dashboards import summary as summary
from stockroom.activity.dashboards import top_actors as top_actors
from stockroom.activity.errors import InvalidFilter, guard
from stockroom.activity.repository import Collection, Document
from stockroom.activity.schemas import (
    ActivityEvent,
    ActivityPage,
    EventFilter,
    ExportFormat,
)
from stockroom.redaction import without_costs
from stockroom.safe_csv import SafeCsvWriter
from stockroom.types import as_utc, utcnow

MAX_PAGE_LIMIT = 500
EXPORT_BATCH_SIZE = 1000
IN_PROCESS_EXPORT_BATCH_SIZE = 10_000

CSV_COLUMNS = (
    "id",
    "type",
    "occurred_at",
    "actor_id",
    "actor_email",
    "entity_type",
    "entity_id",
    "request_id",
    "ip",
    "user_agent",
    "method",
    "path",
    "changes",
    "data",
)


# --- shaping events for callers -------------------------------------------------------------


def to_event(document: Document, *, show_costs: bool) -> dict[str, Any]:
    """The API shape of a stored event (`_id` becomes `id`), cost fields removed unless the
    caller may see costs."""
    changes, data = document.get("changes"), document.get("data")
    if not show_costs:
        changes = without_costs(changes) if changes else changes
        data = without_costs(data) if data else data
    return {
        "id": str(document["_id"]),
        "type": document["type"],
        "occurred_at": as_utc(document["occurred_at"]),
        "actor": document.get("actor"),
        "entity": document.get("entity"),
        "request": document.get("request"),
        "changes": changes or None,
        "data": data or None,
    }


def validate_filter(event_filter: EventFilter) -> EventFilter:
    if event_filter.type is not None and not repository.valid_type_filter(event_filter.type):
        raise InvalidFilter(
            "type must be an event type (`product.created`) or a prefix ending in `*` (`stock.*`)",
            errors=[{"loc": ["query", "type"], "msg": "invalid event type", "type": "value_error"}],
        )
    lo, hi = event_filter.occurred_from, event_filter.occurred_to
    if lo is not None and hi is not None and lo >= hi:
        raise InvalidFilter(
            "`from` must be before `to`",
            errors=[
                {"loc": ["query", "from"], "msg": "must be before `to`", "type": "value_error"}
            ],
        )
    return event_filter


# --- the activity log ------------------------------------------------------------------------


async def list_activity(
    collection: Collection,
    event_filter: EventFilter,
    *,
    cursor: str | None,
    limit: int,
    secret_key: str,
    show_costs: bool,
) -> ActivityPage:
    """One page of matching events, newest first, with the cursor of the next page."""
    validate_filter(event_filter)
    digest = event_filter.digest()
    before = decode_cursor(cursor, digest, secret_key) if cursor is not None else None
    query = await guard(repository.base_query(collection, event_filter))
    documents, has_more = await guard(
        repository.fetch_page(collection, query, event_filter, before, limit)
    )
    next_cursor = (
        encode_cursor(repository.sort_key(documents[-1]), digest, secret_key)
        if has_more and documents
        else None
    )
    return ActivityPage(
        items=[ActivityEvent.model_validate(to_event(d, show_costs=show_costs)) for d in documents],
        next_cursor=next_cursor,
    )


async def iterate_activity(
    collection: Collection,
    event_filter: EventFilter,
    *,
    show_costs: bool,
    batch_size: int = EXPORT_BATCH_SIZE,
) -> AsyncIterator[dict[str, Any]]:
    """Every matching event, newest first, in the API shape, in constant memory."""
    validate_filter(event_filter)
    query = await guard(repository.base_query(collection, event_filter))
    async for event in _events(collection, query, event_filter, show_costs, batch_size):
        yield event


async def _events(
    collection: Collection,
    query: Document,
    event_filter: EventFilter,
    show_costs: bool,
    batch_size: int,
) -> AsyncIterator[dict[str, Any]]:
    documents = repository.iterate_events(
        collection, query, event_filter, batch_size=batch_size, now=utcnow()
    )
    async for document in documents:
        yield to_event(document, show_costs=show_costs)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def ndjson_line(event: Mapping[str, Any]) -> str:
    return (
        json.dumps(event, default=_json_default, ensure_ascii=False, separators=(",", ":")) + "\n"
    )


def csv_row(event: Mapping[str, Any]) -> list[Any]:
    actor = event.get("actor") or {}
    entity = event.get("entity") or {}
    request = event.get("request") or {}
    occurred_at = event["occurred_at"]
    return [
        event["id"],
        event["type"],
        occurred_at,
        actor.get("id"),
        actor.get("email"),
        entity.get("type"),
        entity.get("id"),
        request.get("id"),
        request.get("ip"),
        request.get("user_agent"),
        request.get("method"),
        request.get("path"),
        ndjson_line(event["changes"]).rstrip("\n") if event.get("changes") else "",
        ndjson_line(event["data"]).rstrip("\n") if event.get("data") else "",
    ]


async def open_export(
    collection: Collection,
    event_filter: EventFilter,
    export_format: ExportFormat,
    *,
    show_costs: bool,
    batch_size: int = EXPORT_BATCH_SIZE,
) -> AsyncIterator[str]:
    """The matching events as NDJSON lines or CSV text, in chunks, newest first.

    Filters are checked and the store is reached before this returns, so such failures are
    still proper error responses rather than a stream cut short.
    """
    validate_filter(event_filter)
    query = await guard(repository.base_query(collection, event_filter))
    events = _events(collection, query, event_filter, show_costs, batch_size)
    return _export_chunks(events, export_format)


async def _export_chunks(
    events: AsyncIterator[dict[str, Any]], export_format: ExportFormat
) -> AsyncIterator[str]:
    writer = SafeCsvWriter()
    if export_format is ExportFormat.CSV:
        yield writer.text([CSV_COLUMNS])
    chunk: list[str] = []
    async for event in events:
        if export_format is ExportFormat.CSV:
            chunk.append(writer.text([csv_row(event)]))
        else:
            chunk.append(ndjson_line(event))
        if len(chunk) >= 200:
            yield "".join(chunk)
            chunk.clear()
    if chunk:
        yield "".join(chunk)


def export_filename(export_format: ExportFormat, now: datetime | None = None) -> str:
    stamp = (now or utcnow()).strftime("%Y%m%dT%H%M%SZ")
    return f"activity-{stamp}.{export_format.value}"
