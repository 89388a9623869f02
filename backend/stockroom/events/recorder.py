"""Recording activity events into the outbox, inside the caller's open transaction."""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from stockroom.context import Context
from stockroom.events.models import OutboxEvent
from stockroom.events.wakeup import mark_outbox_pending
from stockroom.types import utcnow

# Field names that never enter an event, whatever the caller passes.
_SECRET_NAME = re.compile(r"(password|passwd|secret|token|hash|api_?key)", re.IGNORECASE)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _EventClock:
    """Event ids and times that strictly increase within the process.

    Two events recorded in the same microsecond (or millisecond, for the id) still sort in the
    order they were recorded: the time is nudged forward by a microsecond, and the UUIDv7's 12-bit
    `rand_a` field is a counter within the millisecond (RFC 9562, section 6.2, method 1).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = _EPOCH
        self._ms = -1
        self._seq = 0

    def next(self) -> tuple[uuid.UUID, datetime]:
        with self._lock:
            now = max(utcnow(), self._last + timedelta(microseconds=1))
            unix_ms = (now - _EPOCH) // timedelta(milliseconds=1)
            if unix_ms == self._ms:
                self._seq += 1
                if self._seq > 0xFFF:  # 4096 events in one millisecond: borrow the next one
                    now = _EPOCH + timedelta(milliseconds=unix_ms + 1)
                    unix_ms, self._seq = unix_ms + 1, 0
            else:
                self._seq = 0
            self._ms, self._last = unix_ms, now
            rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
            value = (unix_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | self._seq << 64 | 0b10 << 62
            return uuid.UUID(int=value | rand), now

    def texts(self, n: int) -> list[tuple[str, str]]:
        """n stamps, as n calls of `next` in a row would give them, as text: the id's canonical
        form and the time as `datetime.isoformat` writes it (what `to_json_value` puts in a
        payload). One lock, one clock read and one random read for all, and the text built
        from parts (the millisecond's and the second's formatted once): building UUID and
        datetime objects and formatting each cost ~10 us a stamp on this machine."""
        with self._lock:
            now = max(utcnow(), self._last + timedelta(microseconds=1))
            micros = (now - _EPOCH) // timedelta(microseconds=1) - 1
            randoms = os.urandom(8 * n).hex()
            last_ms, seq = self._ms, self._seq
            second = head_ms = -1
            prefix = head = ""
            stamps = []
            for i in range(0, 16 * n, 16):
                micros += 1
                unix_ms = micros // 1000
                if unix_ms != last_ms:
                    seq = 0
                else:
                    seq += 1
                    if seq > 0xFFF:  # as in `next`: borrow the next millisecond
                        unix_ms, seq = unix_ms + 1, 0
                        micros = unix_ms * 1000
                if unix_ms != head_ms:  # the id's first 13 digits: its millisecond and version
                    head_ms = unix_ms
                    head = f"{unix_ms & 0xFFFFFFFFFFFF:012x}"
                    head = f"{head[:8]}-{head[8:]}-7"
                last_ms = unix_ms
                if micros // 1_000_000 != second:
                    second = micros // 1_000_000
                    prefix = (_EPOCH + timedelta(seconds=second)).isoformat()[:-6]  # no +00:00
                fraction = micros % 1_000_000
                time = f"{prefix}.{fraction:06d}+00:00" if fraction else f"{prefix}+00:00"
                # 62 random bits after the variant `10`: two from the first hex digit, 60 after.
                r = randoms[i : i + 16]
                stamps.append((f"{head}{seq:03x}-{_VARIANT[r[0]]}{r[1:4]}-{r[4:]}", time))
            self._ms, self._seq = last_ms, seq
            self._last = _EPOCH + timedelta(microseconds=micros)
            return stamps


# A random hex digit's two low bits under the RFC 9562 variant `10`: the id's 17th digit.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_clock = _EventClock()


class SecretFieldError(ValueError):
    """A caller tried to put a secret-looking field into an event."""


def is_secret_field(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def to_json_value(value: Any) -> Any:
    """JSON-safe form of a value: UUIDs and Decimals as strings, datetimes as ISO 8601."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return to_json_value(value.value)
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items() if not is_secret_field(str(k))}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_value(v) for v in value]
    raise TypeError(f"cannot put a {type(value).__name__} into an event")


def compute_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], fields: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """`{field: {old, new}}` for the listed fields whose value differs.

    Secret-looking fields cannot be listed: asking for one is a programming error, so it fails
    loudly in tests instead of leaking quietly in production.
    """
    changes: dict[str, dict[str, Any]] = {}
    for field in fields:
        if is_secret_field(field):
            raise SecretFieldError(f"{field!r} looks secret and cannot be recorded in an event")
        old, new = before.get(field), after.get(field)
        if old != new:
            changes[field] = {"old": to_json_value(old), "new": to_json_value(new)}
    return changes


def next_event_stamp() -> tuple[uuid.UUID, datetime]:
    """A fresh event id and time, in the process's strictly increasing order (for events whose
    rows are written by SQL, such as the ledger's; see stockroom.stock.ledger)."""
    return _clock.next()


def next_event_stamps(n: int) -> list[tuple[str, str]]:
    """n fresh event stamps as `(id, ISO time)` text, in the same order as n calls of
    `next_event_stamp`, at a fraction of their cost (for SQL-written events: a multi-line
    shipment takes two per line)."""
    return _clock.texts(n)


def payload_origin(ctx: Context) -> dict[str, Any]:
    """The `actor` and `request` members of an event payload."""
    actor = ctx.actor
    return {
        "actor": {"id": str(actor.id), "email": actor.email} if actor else None,
        "request": {
            "id": ctx.request_id,
            "ip": ctx.ip,
            "user_agent": ctx.user_agent,
            "method": ctx.method,
            "path": ctx.path,
        },
    }


def build_payload(
    event_id: uuid.UUID,
    type_: str,
    occurred_at: datetime,
    ctx: Context,
    *,
    entity: tuple[str, uuid.UUID | str] | None,
    changes: Mapping[str, Any] | None,
    data: Mapping[str, Any] | None,
) -> dict[str, Any]:
    origin = payload_origin(ctx)
    return {
        "id": str(event_id),
        "type": type_,
        "occurred_at": occurred_at.isoformat(),
        "actor": origin["actor"],
        "entity": {"type": entity[0], "id": str(entity[1])} if entity else None,
        "request": origin["request"],
        "changes": to_json_value(changes) if changes else None,
        "data": to_json_value(data) if data else None,
    }


def record(
    session: AsyncSession,
    type_: str,
    ctx: Context,
    *,
    entity: tuple[str, uuid.UUID | str] | None = None,
    changes: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> uuid.UUID:
    """Add one event to the outbox in the session's open transaction; returns the event id.

    No I/O to the event store happens here: the relay delivers the row after commit, and a
    rollback discards it together with the change it describes.
    """
    event_id, now = _clock.next()
    when = occurred_at or now
    payload = build_payload(event_id, type_, when, ctx, entity=entity, changes=changes, data=data)
    rows: list[dict[str, Any]] = session.sync_session.info.setdefault(_RECORDED, [])
    rows.append({"id": event_id, "type": type_, "occurred_at": when, "payload": payload})
    return event_id


# Recorded events wait in the session and are written by one Core INSERT just before the
# transaction commits: adding them as ORM objects (identity map, flush plan, per-object state)
# was about a fifth of a stock movement's API CPU (docs/benchmarks.md). The application opens no
# savepoints; a rolled-back transaction takes its recorded events with it.
_RECORDED = "stockroom.recorded_events"
_INSERT_EVENTS = insert(OutboxEvent)


@event.listens_for(Session, "before_commit")
def _insert_recorded_events(session: Session) -> None:
    rows = session.info.pop(_RECORDED, None)
    if rows:
        session.connection().execute(_INSERT_EVENTS, rows)
        mark_outbox_pending(session)


@event.listens_for(Session, "after_soft_rollback")
def _discard_recorded_events(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_RECORDED, None)
