"""`GET /api/v1/activity/export`: NDJSON and CSV, filters, headers, constant memory."""

from __future__ import annotations

import csv
import io
import json
import sys
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stockroom.activity import service
from stockroom.activity.repository import NEWEST_FIRST
from stockroom.activity.schemas import EventFilter, ExportFormat
from tests.activity.conftest import at, event, event_id_at, new_collection
from tests.conftest import ClientAs


async def test_ndjson_export_streams_the_filtered_events_newest_first(
    client_as: ClientAs, events: Any
) -> None:
    base = at("2026-03-01T00:00:00")
    wanted = [event("stock.movement_posted", base + timedelta(minutes=i)) for i in range(30)]
    await events.insert_many(
        [*wanted, *(event("auth.login_succeeded", base + timedelta(minutes=i)) for i in range(30))]
    )
    c = await client_as("analyst")

    response = await c.get(
        "/api/v1/activity/export", params={"format": "ndjson", "type": "stock.*"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert ".ndjson" in disposition
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["id"] for line in lines] == [doc["_id"] for doc in reversed(wanted)]
    assert lines[0]["type"] == "stock.movement_posted"


async def test_csv_export_has_a_header_and_one_row_per_event(
    client_as: ClientAs, events: Any
) -> None:
    actor = uuid.uuid4()
    doc = event(
        "product.updated",
        "2026-03-01T10:00:00",
        actor=(actor, "=cmd@example.com"),
        entity=("product", uuid.uuid4()),
        changes={"name": {"old": "a", "new": "b,c"}},
    )
    await events.insert_one(doc)
    c = await client_as("analyst")

    response = await c.get("/api/v1/activity/export", params={"format": "csv"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert ".csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == doc["_id"]
    assert row["actor_id"] == str(actor)
    assert row["actor_email"] == "'=cmd@example.com"  # not a formula when opened in a spreadsheet
    assert json.loads(row["changes"]) == {"name": {"old": "a", "new": "b,c"}}
    assert datetime.fromisoformat(row["occurred_at"]) == at("2026-03-01T10:00:00")


async def test_export_refuses_bad_filters_before_streaming(
    client_as: ClientAs, events: Any
) -> None:
    c = await client_as("analyst")
    bad_type = await c.get("/api/v1/activity/export", params={"type": "no spaces"})
    bad_format = await c.get("/api/v1/activity/export", params={"format": "xml"})
    assert bad_type.status_code == 422
    assert bad_format.status_code == 422


async def test_export_covers_sparse_and_bursty_history_exactly_once() -> None:
    collection = new_collection()
    now = datetime.now(UTC)
    docs = [
        # a burst: 50 events in one millisecond
        *(event("x.burst", now - timedelta(days=400)) for _ in range(50)),
        # a quiet stretch, then a dense one
        *(event("x.old", now - timedelta(days=200, seconds=i)) for i in range(40)),
        *(event("x.recent", now - timedelta(minutes=i)) for i in range(60)),
        event("x.future", now + timedelta(minutes=5)),
    ]
    await collection.insert_many(docs)

    exported = [
        e["id"]
        async for e in service.iterate_activity(
            collection, EventFilter(), show_costs=True, batch_size=7
        )
    ]
    bounded = [
        e["id"]
        async for e in service.iterate_activity(
            collection,
            EventFilter(occurred_from=now - timedelta(days=300), occurred_to=now),
            show_costs=True,
            batch_size=7,
        )
    ]

    assert sorted(exported) == sorted(d["_id"] for d in docs)
    assert len(exported) == len(set(exported))
    expected_bounded = {
        d["_id"]
        for d in docs
        if now - timedelta(days=300) <= d["occurred_at"] < now - timedelta(milliseconds=1)
    }
    assert set(bounded) >= expected_bounded
    assert set(bounded) <= {d["_id"] for d in docs if d["type"] in ("x.old", "x.recent")}


async def _export_peak(count: int, batch_size: int) -> int:
    """Insert `count` events, export them as NDJSON; tracemalloc peak of the export alone."""
    collection = new_collection()
    now = datetime.now(UTC)
    step = timedelta(seconds=2)
    await collection.insert_many(
        [
            event(
                "stock.movement_posted",
                now - step * i,
                id=event_id_at(now - step * i),
                actor=(uuid.UUID(int=i % 50), f"user{i % 50}@example.com"),
                data={"warehouse_id": str(uuid.UUID(int=i % 3)), "signed_quantity": i % 7 - 3},
            )
            for i in range(count)
        ]
    )
    # The expected order, read before tracing starts: the check below allocates nothing that
    # grows with the count, so the peak is the export's alone.
    newest_first = [d["_id"] async for d in collection.find({}, {"_id": 1}).sort(NEWEST_FIRST)]
    exported = 0
    tracemalloc.start()
    chunks = await service.open_export(
        collection, EventFilter(), ExportFormat.NDJSON, show_costs=True, batch_size=batch_size
    )
    async for chunk in chunks:
        for line in chunk.splitlines():
            assert exported < count, "the export has more lines than there are events"
            assert json.loads(line)["id"] == newest_first[exported], "not newest first, once"
            exported += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert exported == count, "the export is missing events"
    return peak


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_export_of_100k_events_streams_in_constant_memory() -> None:
    # Same batch size, five times the events, both several batches long. Parsing back must give
    # every event, newest first, exactly once, and the export's peak memory must stay about the
    # same instead of growing with the count. What may grow is the in-process store's own
    # per-query list of references to its documents (8 bytes per stored event), not the export.
    small_peak = await _export_peak(20_000, batch_size=10_000)
    large_peak = await _export_peak(100_000, batch_size=10_000)
    sys.stderr.write(f"export peak: 20k events {small_peak:,} B, 100k events {large_peak:,} B\n")

    assert large_peak < small_peak * 1.5, (small_peak, large_peak)
    # Far below holding the export (100,000 NDJSON lines are about 50 MB) or the documents.
    assert large_peak < 25_000_000, large_peak
