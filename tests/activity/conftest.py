"""Fixtures of the activity tests: the app's event store and hand-built events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.db.base import uuid7
from stockroom.events import rollups
from stockroom.events.store import in_process_event_store


@dataclass
class StandInStore:
    """What the app needs of an event store: its `activity_events` collection."""

    collection: Any
    in_process: bool = True

    async def ping(self) -> bool:
        return True


def new_collection() -> Any:
    """An empty `activity_events` collection of a fresh in-process store (what `serve` uses)."""
    return in_process_event_store().collection


class DeliveredCollection:
    """The `activity_events` collection, where `insert_many` writes events as the relay does:
    the documents, then the rollups (the touched closed hours, then the watermark's advance).
    Everything else is the collection's own."""

    def __init__(self, collection: Any, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.collection = collection
        self.sessionmaker = sessionmaker

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)

    async def insert_many(self, documents: list[dict[str, Any]], **kwargs: Any) -> Any:
        result = await self.collection.insert_many(documents, **kwargs)
        async with self.sessionmaker() as session, session.begin():
            await rollups.refresh_after_delivery(session, self.collection, documents)
        await rollups.advance(self.sessionmaker, self.collection, datetime.now(UTC))
        return result

    async def insert_one(self, document: dict[str, Any], **kwargs: Any) -> Any:
        return await self.insert_many([document], **kwargs)


@pytest.fixture
def events(app: Any, sessionmaker: async_sessionmaker[AsyncSession]) -> Any:
    """The `activity_events` collection the app reads (the app's own store when it has one),
    written to through the relay's path (`DeliveredCollection`)."""
    store = getattr(app.state, "event_store", None)
    if store is None:
        store = StandInStore(new_collection())
        app.state.event_store = store
    return DeliveredCollection(store.collection, sessionmaker)


def event_id_at(occurred_at: datetime) -> str:
    """An event id as the recorder makes them: a UUIDv7 of the event's millisecond, so ids sort
    like times."""
    return str(uuid7(int(occurred_at.timestamp() * 1000)))


def at(text: str) -> datetime:
    """`at("2026-03-01T10:00:00")`: an aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def event(
    type_: str = "product.updated",
    occurred_at: datetime | str = "2026-03-01T10:00:00",
    *,
    id: str | None = None,
    actor: tuple[uuid.UUID | str, str] | None = None,
    entity: tuple[str, uuid.UUID | str] | None = None,
    changes: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One stored event document, shaped like the relay writes them."""
    when = at(occurred_at) if isinstance(occurred_at, str) else occurred_at
    return {
        "_id": id or str(uuid.uuid4()),
        "type": type_,
        "occurred_at": when.replace(microsecond=when.microsecond // 1000 * 1000),
        "actor": {"id": str(actor[0]), "email": actor[1]} if actor else None,
        "entity": {"type": entity[0], "id": str(entity[1])} if entity else None,
        "request": {
            "id": uuid.uuid4().hex,
            "ip": "203.0.113.7",
            "user_agent": "pytest",
            "method": "POST",
            "path": "/api/v1/products",
        },
        "changes": changes,
        "data": data,
    }


def movement(
    occurred_at: datetime | str,
    warehouse_id: uuid.UUID | str,
    signed_quantity: int,
    movement_type: str = "receipt",
    **kwargs: Any,
) -> dict[str, Any]:
    return event(
        "stock.movement_posted",
        occurred_at,
        data={
            "warehouse_id": str(warehouse_id),
            "product_id": str(uuid.uuid4()),
            "type": movement_type,
            "quantity": abs(signed_quantity),
            "signed_quantity": signed_quantity,
        },
        **kwargs,
    )
