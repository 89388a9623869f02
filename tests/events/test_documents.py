from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from stockroom.events.documents import ActivityEvent, to_document
from stockroom.events.relay import deliver_pending
from stockroom.events.store import EventStore, in_process_event_store
from tests.events.conftest import Sessionmaker, record_committed

INDEXES = {
    "occurred_at_1": [("occurred_at", 1)],
    "type_1_occurred_at_1": [("type", 1), ("occurred_at", 1)],
    "actor.id_1_occurred_at_1": [("actor.id", 1), ("occurred_at", 1)],
    "entity.type_1_entity.id_1_occurred_at_1": [
        ("entity.type", 1),
        ("entity.id", 1),
        ("occurred_at", 1),
    ],
}


async def indexes(store: EventStore) -> dict[str, dict[str, object]]:
    info: dict[str, dict[str, object]] = await store.collection.index_information()
    return info


async def test_the_collection_has_the_indexes_analysts_query_by(event_store: EventStore) -> None:
    info = await indexes(event_store)
    for name, keys in INDEXES.items():
        assert [tuple(k) for k in info[name]["key"]] == keys  # type: ignore[attr-defined]
    assert "expireAfterSeconds" not in info["occurred_at_1"]
    assert event_store.collection.name == "activity_events"
    assert ActivityEvent.get_collection_name() == "activity_events"


async def test_event_retention_makes_occurred_at_a_ttl_index_and_follows_changes() -> None:
    mock = in_process_event_store()
    # Standing in for a real MongoDB: the in-process store itself keeps no TTL index.
    store = EventStore(mock.client, mock.database, in_process=False, retention_days=7)
    assert await store.initialize()
    assert (await indexes(store))["occurred_at_1"]["expireAfterSeconds"] == 7 * 86_400

    store.retention_days, store.initialized = 0, False  # restarted with EVENT_RETENTION_DAYS=0
    assert await store.initialize()
    info = await indexes(store)
    assert "expireAfterSeconds" not in info["occurred_at_1"]
    assert set(INDEXES) <= set(info)


async def test_the_in_process_store_keeps_no_ttl_index() -> None:
    store = in_process_event_store(retention_days=7)
    assert await store.initialize()
    assert "expireAfterSeconds" not in (await indexes(store))["occurred_at_1"]


def test_documents_use_utc_dates_and_canonical_id_strings() -> None:
    event_id = uuid.uuid4()
    document = to_document(
        {
            "id": str(event_id).upper(),
            "type": "role.updated",
            "occurred_at": "2025-06-01T10:20:30.123456+02:00",
            "actor": None,
            "entity": {"type": "role", "id": "auditor"},
            "request": {"id": "r1"},
            "changes": None,
            "data": {"count": 2**64},
        }
    )
    assert document["_id"] == str(event_id)
    assert document["occurred_at"] == datetime(2025, 6, 1, 8, 20, 30, 123000, tzinfo=UTC)
    assert document["entity"] == {"type": "role", "id": "auditor"}
    assert document["request"] == {
        "id": "r1",
        "ip": None,
        "user_agent": None,
        "method": None,
        "path": None,
    }
    assert document["data"] == {"count": str(2**64)}


def test_a_payload_without_an_id_is_refused() -> None:
    with pytest.raises(KeyError):
        to_document({"type": "x", "occurred_at": "2025-01-01T00:00:00+00:00"})


async def test_delivered_events_load_as_typed_beanie_documents(
    event_store: EventStore, fresh_sessionmaker: Sessionmaker
) -> None:
    widget = uuid.uuid4()
    (event_id,) = await record_committed(
        fresh_sessionmaker,
        [widget],
        changes={"price": {"old": Decimal("1.00"), "new": Decimal("2.50")}},
        data={"quantity": 4},
    )
    await deliver_pending(fresh_sessionmaker, event_store)

    loaded = await ActivityEvent.get(str(event_id))
    assert loaded is not None
    assert loaded.type == "widget.updated"
    assert loaded.occurred_at.tzinfo is not None
    assert loaded.actor is not None
    assert loaded.actor.email == "alice@example.com"
    assert loaded.entity is not None
    assert loaded.entity.id == str(widget)
    assert loaded.changes is not None
    assert loaded.changes["price"].new == "2.50"
    assert loaded.data == {"quantity": 4}
    found = await ActivityEvent.find(
        ActivityEvent.type == "widget.updated", ActivityEvent.entity.id == str(widget)
    ).to_list()
    assert [e.id for e in found] == [str(event_id)]
