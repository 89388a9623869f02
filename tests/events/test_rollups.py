"""Rollups equal a full aggregation over the raw events, whatever the delivery did.

Random event streams are delivered as the relay does (write the events, recompute the touched
closed hours, advance the watermark) with duplicate deliveries, replays (`rebuild`) and crashes
between writing the events and writing the buckets (the crashed batch is delivered again later:
at least once). Then every dashboard answers exactly what the dashboards' reference pipelines
(one aggregation over the raw events, what the endpoints ran before rollups) answer, and every
closed hour's document is the fold of its raw events and valid BSON.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
from bson.codec_options import CodecOptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import ReplaceOne
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.activity import repository, service
from stockroom.activity.schemas import Bucket
from stockroom.events import rollups
from stockroom.events.store import in_process_event_store
from stockroom.types import as_utc

AWARE = CodecOptions(tz_aware=True)
BASE = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = timedelta(days=3)
TYPES = ["product.updated", "stock.movement_posted", "auth.login_failed", "auth.login_succeeded"]
ACTORS = [(str(uuid.UUID(int=i + 1)), f"user{i}@example.com") for i in range(3)]
WAREHOUSES = [str(uuid.UUID(int=100 + i)) for i in range(2)]


def moment(minutes: int, ms: int = 0) -> datetime:
    return BASE + timedelta(minutes=minutes, milliseconds=ms)


minutes_in_window = st.integers(min_value=0, max_value=int(WINDOW.total_seconds() // 60))


@st.composite
def raw_event(draw: st.DrawFn, number: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(TYPES))
    actor = draw(st.sampled_from([None, *ACTORS]))
    document: dict[str, Any] = {
        "_id": f"{number:05d}",
        "type": kind,
        "occurred_at": moment(draw(minutes_in_window), draw(st.integers(0, 999))),
        "actor": {"id": actor[0], "email": actor[1]} if actor else None,
        "entity": None,
        "request": {},
        "changes": None,
        "data": None,
    }
    if kind == "stock.movement_posted":
        document["data"] = {
            "warehouse_id": draw(st.sampled_from(WAREHOUSES)),
            "signed_quantity": draw(st.integers(min_value=-9, max_value=9)),
        }
    return document


@dataclass(frozen=True)
class Step:
    action: str  # deliver | crash | duplicate | replay | advance
    batch: int = 0
    clock: int = 0  # minutes after BASE


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], list[Step], int]:
    count = draw(st.integers(min_value=0, max_value=40))
    events = [draw(raw_event(number)) for number in range(count)]
    batches: list[list[dict[str, Any]]] = []
    position = 0
    while position < count:
        size = draw(st.integers(min_value=1, max_value=6))
        batches.append(events[position : position + size])
        position += size
    steps: list[Step] = []
    for index in range(len(batches)):
        steps.append(Step(draw(st.sampled_from(["deliver", "deliver", "crash"])), index))
        extra = draw(st.sampled_from(["none", "none", "duplicate", "replay", "advance"]))
        if extra == "duplicate":
            steps.append(Step("duplicate", draw(st.integers(0, index))))
        elif extra != "none":
            steps.append(Step(extra, clock=draw(minutes_in_window)))
    final_clock = draw(minutes_in_window)
    return batches, steps, final_clock


class Relay:
    """What the relay does to the store, step by step, with the advisory lock in PostgreSQL."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.events = in_process_event_store().collection
        self.clock = BASE

    async def write(self, batch: list[dict[str, Any]]) -> None:
        requests = [ReplaceOne({"_id": d["_id"]}, dict(d), upsert=True) for d in batch]
        await self.events.bulk_write(requests, ordered=True)

    async def deliver(self, batch: list[dict[str, Any]]) -> None:
        await self.write(batch)
        async with self.sessionmaker() as session, session.begin():
            await rollups.refresh_after_delivery(session, self.events, batch)
        await self.advance(self.clock)

    async def advance(self, clock: datetime) -> None:
        self.clock = max(self.clock, clock)
        await rollups.advance(self.sessionmaker, self.events, self.clock)

    async def replay(self) -> None:
        await rollups.rebuild(self.sessionmaker, self.events, self.clock)


async def reference_activity(events: Any, start: datetime, end: datetime, bucket: Bucket) -> Any:
    rows = await repository.aggregate(events, repository.activity_pipeline(start, end, bucket))
    return [(as_utc(r["bucket_start"]), r["type"], r["count"]) for r in rows]


async def reference_flow(events: Any, start: datetime, end: datetime, bucket: Bucket) -> Any:
    rows = await repository.aggregate(
        events, repository.stock_flow_pipeline(start, end, bucket, None)
    )
    return [
        (as_utc(r["bucket_start"]), r["warehouse_id"], r["units_in"], r["units_out"]) for r in rows
    ]


async def reference_top(events: Any, start: datetime, end: datetime) -> Any:
    rows = await repository.aggregate(events, repository.top_actors_pipeline(start, end, 10))
    return [(r["actor_id"], r["email"], r["events"]) for r in rows]


async def reference_figures(events: Any, now: datetime) -> service.EventFigures:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return service.EventFigures(
        events_today=await repository.count(events, repository.since_midnight_query(midnight)),
        movements_today=await repository.count(
            events, repository.since_midnight_query(midnight, repository.MOVEMENT_EVENT)
        ),
        failed_logins_24h=await repository.count(
            events,
            {
                "type": repository.FAILED_LOGIN_EVENT,
                "occurred_at": {"$gte": now - timedelta(days=1)},
            },
        ),
        active_users_7d=await repository.count_active_actors(events, now - timedelta(days=7)),
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    scenario=scenarios(),
    ranges=st.lists(st.tuples(minutes_in_window, minutes_in_window), min_size=2, max_size=4),
)
async def test_rollups_equal_a_full_aggregation_over_raw_events(
    sessionmaker: async_sessionmaker[AsyncSession],
    scenario: tuple[list[list[dict[str, Any]]], list[Step], int],
    ranges: list[tuple[int, int]],
) -> None:
    batches, steps, final_clock = scenario
    relay = Relay(sessionmaker)
    crashed: list[int] = []
    for step in steps:
        if step.action == "deliver":
            await relay.deliver(batches[step.batch])
        elif step.action == "crash":
            await relay.write(batches[step.batch])  # written, never marked: delivered again
            crashed.append(step.batch)
        elif step.action == "duplicate":
            await relay.deliver(batches[step.batch])
        elif step.action == "replay":
            await relay.replay()
        else:
            await relay.advance(moment(step.clock))
    for index in crashed:
        await relay.deliver(batches[index])
    await relay.advance(moment(final_clock))
    events = relay.events

    # Every closed hour's document is exactly the fold of its raw events, and valid BSON.
    closed_through = await rollups.watermark(rollups.rollups_of(events))
    assert closed_through is not None
    raw = [d async for d in events.find({})]
    expected = {
        hour: tally.to_document("hour", hour)
        for hour, tally in rollups.fold(raw).items()
        if hour < closed_through
    }
    stored = {
        as_utc(d["bucket_start"]): d
        async for d in rollups.rollups_of(events).find({"granularity": "hour"})
    }
    assert {h: rollups.Tally.from_document(d) for h, d in stored.items()} == {
        h: rollups.Tally.from_document(d) for h, d in expected.items()
    }
    async for document in rollups.rollups_of(events).find({}):
        assert bson.decode(bson.encode(document), codec_options=AWARE) == document

    async with sessionmaker() as session:
        for a, b in ranges:
            start, end = moment(min(a, b), 7), moment(max(a, b) + 1, 3)
            for bucket in Bucket:
                got = await service.activity_buckets(events, start, end, bucket)
                assert [(r.bucket_start, r.type, r.count) for r in got] == (
                    await reference_activity(events, start, end, bucket)
                )
                flow = await service.stock_flow(events, session, start, end, bucket, None)
                assert [
                    (r.bucket_start, r.warehouse_id, r.units_in, r.units_out) for r in flow
                ] == await reference_flow(events, start, end, bucket)
            top = await service.top_actors(events, start, end, 10)
            assert [(r.actor_id, r.email, r.events) for r in top] == await reference_top(
                events, start, end
            )
            now = end
            assert await service.event_figures(events, now) == await reference_figures(events, now)


async def test_dashboards_follow_a_recomputed_bucket_after_reading_it(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Readers keep parsed buckets by revision: a late event recomputes a closed bucket, which
    the next read sees (its revision changed), and a redelivered one changes nothing."""
    relay = Relay(sessionmaker)
    actor_id, email = ACTORS[0]

    def event(number: int, minutes: int) -> dict[str, Any]:
        return {
            "_id": f"{number:05d}",
            "type": "product.updated",
            "occurred_at": moment(minutes),
            "actor": {"id": actor_id, "email": email},
            "entity": None,
            "request": {},
            "changes": None,
            "data": None,
        }

    await relay.deliver([event(n, 60 * 24 + n) for n in range(3)])  # day 2, 00:00-00:02
    await relay.advance(moment(60 * 24 * 3))  # day 2 is closed: a day document
    start, end = BASE, moment(60 * 24 * 3)
    today = moment(60 * 24 + 60 * 23)  # day 2, 23:00: its closed hours are "today"
    before = await service.top_actors(relay.events, start, end, 10)
    assert [(r.actor_id, r.events) for r in before] == [(actor_id, 3)]
    figures = await service.event_figures(relay.events, today)

    await relay.deliver([event(3, 60 * 24 + 30)])  # late, into the closed hour and day
    await relay.deliver([event(0, 60 * 24)])  # redelivered: already counted

    after = await service.top_actors(relay.events, start, end, 10)
    assert [(r.actor_id, r.events) for r in after] == [(actor_id, 4)]
    assert [(r.actor_id, r.email, r.events) for r in after] == await reference_top(
        relay.events, start, end
    )
    later = await service.event_figures(relay.events, today)
    assert later.events_today == figures.events_today + 1
    assert later == await reference_figures(relay.events, today)
