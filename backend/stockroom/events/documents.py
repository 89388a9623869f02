"""The activity event as stored in MongoDB: the Beanie document and the outbox-to-document mapping.

One document per event, `_id` = the event id. Encoding rules (the same for the in-process store and
a real MongoDB, so that analysts' queries work on both):

- ids (`_id`, `actor.id`, `entity.id`) are canonical lowercase UUID strings;
- `occurred_at` is a BSON date (UTC, millisecond precision: BSON dates hold milliseconds);
- values inside `changes` and `data` are as recorded: Decimals and UUIDs as strings, dates and
  datetimes as ISO 8601 strings, integers beyond 64 bits as strings.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pymongo
from beanie import Document
from pydantic import BaseModel, Field

from stockroom.types import as_utc

COLLECTION = "activity_events"

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class ActorRef(BaseModel):
    id: str
    email: str | None = None


class EntityRef(BaseModel):
    type: str
    id: str


class RequestInfo(BaseModel):
    id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    method: str | None = None
    path: str | None = None


class FieldChange(BaseModel):
    old: Any = None
    new: Any = None


class ActivityEvent(Document):
    """One activity event (collection `activity_events`)."""

    id: str = Field(description="The event id, a canonical UUID string")  # type: ignore[assignment]
    type: str
    occurred_at: datetime
    actor: ActorRef | None = None
    entity: EntityRef | None = None
    request: RequestInfo = Field(default_factory=RequestInfo)
    changes: dict[str, FieldChange] | None = None
    data: dict[str, Any] | None = None

    class Settings:
        name = COLLECTION
        # Set to `activity_indexes(settings.event_retention_days)` before Beanie is initialized.
        indexes: list[pymongo.IndexModel] = []  # noqa: RUF012 - Beanie reads this attribute


def activity_indexes(retention_days: int = 0) -> list[pymongo.IndexModel]:
    """The collection's indexes. With a retention, the `occurred_at` index is also a TTL index."""
    ttl: dict[str, Any] = (
        {"expireAfterSeconds": retention_days * 86_400} if retention_days > 0 else {}
    )
    return [
        pymongo.IndexModel([("occurred_at", pymongo.ASCENDING)], name="occurred_at_1", **ttl),
        pymongo.IndexModel(
            [("type", pymongo.ASCENDING), ("occurred_at", pymongo.ASCENDING)],
            name="type_1_occurred_at_1",
        ),
        pymongo.IndexModel(
            [("actor.id", pymongo.ASCENDING), ("occurred_at", pymongo.ASCENDING)],
            name="actor.id_1_occurred_at_1",
        ),
        pymongo.IndexModel(
            [
                ("entity.type", pymongo.ASCENDING),
                ("entity.id", pymongo.ASCENDING),
                ("occurred_at", pymongo.ASCENDING),
            ],
            name="entity.type_1_entity.id_1_occurred_at_1",
        ),
    ]


def parse_occurred_at(value: str | datetime) -> datetime:
    """A UTC datetime truncated to milliseconds, what a BSON date can hold."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    when = as_utc(when)
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def _bson_safe(value: Any) -> Any:
    """JSON values from the outbox, made safe for BSON (which has no integers beyond 64 bits)."""
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else str(value)
    if isinstance(value, Mapping):
        return {str(k): _bson_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bson_safe(v) for v in value]
    return str(value)


def _uuid_str(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(value)  # an entity keyed by something else than a UUID (e.g. a role name)


def to_document(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The MongoDB document for one outbox payload (see the module docstring for the encoding)."""
    actor = payload.get("actor")
    entity = payload.get("entity")
    request = payload.get("request") or {}
    return {
        "_id": str(uuid.UUID(str(payload["id"]))),
        "type": str(payload["type"]),
        "occurred_at": parse_occurred_at(payload["occurred_at"]),
        "actor": ({"id": _uuid_str(actor["id"]), "email": actor.get("email")} if actor else None),
        "entity": {"type": str(entity["type"]), "id": _uuid_str(entity["id"])} if entity else None,
        "request": {
            "id": request.get("id"),
            "ip": request.get("ip"),
            "user_agent": request.get("user_agent"),
            "method": request.get("method"),
            "path": request.get("path"),
        },
        "changes": _bson_safe(payload["changes"]) if payload.get("changes") else None,
        "data": _bson_safe(payload["data"]) if payload.get("data") else None,
    }
