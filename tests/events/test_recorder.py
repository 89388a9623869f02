from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from stockroom.events import compute_changes, record
from stockroom.events.recorder import SecretFieldError, next_event_stamp, next_event_stamps
from tests.events.conftest import ALICE, Sessionmaker, outbox_rows, request_context


class UseCaseFailed(Exception):
    pass


async def test_a_use_case_that_fails_after_recording_leaves_no_outbox_row(
    fresh_sessionmaker: Sessionmaker,
) -> None:

    async def failing_use_case() -> None:
        async with fresh_sessionmaker() as session, session.begin():
            record(session, "widget.updated", request_context(), entity=("widget", uuid.uuid4()))
            await session.flush()  # the row really reached PostgreSQL before the failure
            raise UseCaseFailed

    with pytest.raises(UseCaseFailed):
        await failing_use_case()

    assert await outbox_rows(fresh_sessionmaker) == []


async def test_a_committed_use_case_leaves_exactly_one_outbox_row(
    fresh_sessionmaker: Sessionmaker,
) -> None:
    widget = uuid.uuid4()
    async with fresh_sessionmaker() as session, session.begin():
        event_id = record(session, "widget.updated", request_context(), entity=("widget", widget))

    rows = await outbox_rows(fresh_sessionmaker)
    assert len(rows) == 1
    row = rows[0]
    assert row.id == event_id
    assert row.type == "widget.updated"
    assert row.delivered_at is None
    assert row.attempts == 0
    assert row.entity_key == f"widget:{widget}"
    assert row.payload["id"] == str(event_id)
    assert row.payload["actor"] == {"id": str(ALICE.id), "email": ALICE.email}
    assert row.payload["request"] == {
        "id": "req-1",
        "ip": "203.0.113.7",
        "user_agent": "pytest/8",
        "method": "PATCH",
        "path": "/api/v1/widgets/{widget_id}",
    }


async def test_event_ids_and_times_follow_the_recording_order(
    fresh_sessionmaker: Sessionmaker,
) -> None:
    async with fresh_sessionmaker() as session, session.begin():
        ids = [record(session, "widget.created", request_context()) for _ in range(500)]
    assert {i.version for i in ids} == {7}
    assert ids == sorted(ids)
    rows = await outbox_rows(fresh_sessionmaker)  # ordered by occurred_at, then id
    assert [row.id for row in rows] == ids
    assert len({row.occurred_at for row in rows}) == len(ids)


def test_changes_hold_only_what_changed_as_json_safe_values() -> None:
    when = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    supplier = uuid.uuid4()
    changes = compute_changes(
        {"name": "Bolt", "price": Decimal("10.50"), "supplier_id": None, "seen": when},
        {"name": "Bolt M6", "price": Decimal("10.50"), "supplier_id": supplier, "seen": when},
        fields=["name", "price", "supplier_id", "seen"],
    )
    assert changes == {
        "name": {"old": "Bolt", "new": "Bolt M6"},
        "supplier_id": {"old": None, "new": str(supplier)},
    }


@pytest.mark.parametrize(
    "field", ["password", "password_hash", "refresh_token", "secret_key", "api_key"]
)
def test_changes_refuse_secret_fields(field: str) -> None:
    with pytest.raises(SecretFieldError):
        compute_changes({field: "a"}, {field: "b"}, fields=[field])


async def test_secret_keys_never_enter_event_data(fresh_sessionmaker: Sessionmaker) -> None:
    async with fresh_sessionmaker() as session, session.begin():
        record(
            session,
            "user.created",
            request_context(),
            data={"email": "bob@example.com", "password": "hunter2", "nested": {"token": "x"}},
        )
    (row,) = await outbox_rows(fresh_sessionmaker)
    assert row.payload["data"] == {"email": "bob@example.com", "nested": {}}
    assert "hunter2" not in str(row.payload)


def test_stamps_drawn_as_text_keep_the_order_of_single_stamps() -> None:
    """`next_event_stamps` (a shipment's stamps) interleaved with `next_event_stamp`: ids and
    times strictly increase together, ids are canonical UUIDv7s, times are `isoformat`'s text,
    also across the 4096 ids a millisecond holds."""
    stamps: list[tuple[uuid.UUID, datetime]] = []
    for round_ in range(300):
        if round_ % 3 == 0:
            stamps.append(next_event_stamp())
            continue
        for text_id, text_time in next_event_stamps(5000 if round_ == 1 else round_ % 7 + 1):
            event_id, at = uuid.UUID(text_id), datetime.fromisoformat(text_time)
            assert str(event_id) == text_id
            assert at.isoformat() == text_time
            assert event_id.version == 7
            assert event_id.variant == uuid.RFC_4122
            assert at.tzinfo == UTC
            stamps.append((event_id, at))
    for (id_a, at_a), (id_b, at_b) in itertools.pairwise(stamps):
        assert id_a.int < id_b.int
        assert at_a < at_b
    assert len({i for i, _ in stamps}) == len(stamps)
