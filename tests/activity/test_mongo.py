"""Against a real MongoDB (marker `mongo`, needs MONGODB_URL): every query the activity domain
sends is served by one of the declared indexes (checked with `explain`), and the answers match.

Skipped with a reason when MONGODB_URL is not set; the same behaviour is tested on the in-process
store by the other modules.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.activity import repository, service
from stockroom.activity.schemas import Bucket, EventFilter
from stockroom.events import rollups
from stockroom.events.store import EventStore, mongodb_event_store
from stockroom.types import as_utc
from tests.activity.conftest import event, movement

pytestmark = pytest.mark.mongo

NO_MONGODB = "MONGODB_URL is not set: the explain/index tests need a real MongoDB (7 or newer)"


@dataclass
class RecordingCollection:
    """Passes every call through to the real collection and remembers the query shapes."""

    inner: Any
    finds: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    counts: list[dict[str, Any]] = field(default_factory=list)
    pipelines: list[list[dict[str, Any]]] = field(default_factory=list)
    distincts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def find(self, query: dict[str, Any], projection: Any = None) -> Any:
        cursor = self.inner.find(query, projection)
        recorder = self

        class Recorded:
            def __init__(self) -> None:
                self.sort_spec: Any = None

            def sort(self, *args: Any) -> Recorded:
                self.sort_spec = args[0] if len(args) == 1 else [(args[0], args[1])]
                cursor.sort(*args)
                return self

            def limit(self, n: int) -> Recorded:
                recorder.finds.append((query, self.sort_spec))
                cursor.limit(n)
                return self

            def __aiter__(self) -> Any:
                return cursor.__aiter__()

            async def to_list(self, n: int | None) -> list[Any]:
                result: list[Any] = await cursor.to_list(n)
                return result

        return Recorded()

    async def count_documents(self, query: dict[str, Any], **kwargs: Any) -> int:
        self.counts.append(query)
        result: int = await self.inner.count_documents(query, **kwargs)
        return result

    async def distinct(self, key: str, query: dict[str, Any]) -> list[Any]:
        self.distincts.append((key, query))
        result: list[Any] = await self.inner.distinct(key, query)
        return result

    def aggregate(self, pipeline: list[dict[str, Any]]) -> Any:
        self.pipelines.append(pipeline)
        return self.inner.aggregate(pipeline)


@pytest.fixture
async def mongo_store() -> AsyncIterator[EventStore]:
    url = os.environ.get("MONGODB_URL")
    if not url:
        pytest.skip(NO_MONGODB)
    name = f"stockroom_activity_{uuid.uuid4().hex[:10]}"
    store = mongodb_event_store(url, name)
    assert await store.initialize(), "the MongoDB at MONGODB_URL is not reachable"
    try:
        yield store
    finally:
        await store.client.drop_database(name)
        store.close()


NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ACTOR = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
PRODUCT = uuid.UUID("00000000-0000-0000-0000-0000000000b1")


def _fixture_events() -> list[dict[str, Any]]:
    rng = random.Random(3)
    docs = []
    for i in range(3000):
        when = NOW - timedelta(seconds=rng.randrange(0, 9 * 86400))
        kind = rng.choice(["product.updated", "auth.login_failed", "stock"])
        if kind == "stock":
            docs.append(movement(when, uuid.UUID(int=i % 3), rng.randrange(1, 9) - 4 or 2))
        else:
            docs.append(
                event(
                    kind,
                    when,
                    actor=(ACTOR, "a@x.io") if i % 5 == 0 else (uuid.UUID(int=i % 40), "u@x.io"),
                    entity=("product", PRODUCT if i % 7 == 0 else uuid.uuid4()),
                )
            )
    return docs


def _stages(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("stage"), str):
            yield node["stage"]
        for value in node.values():
            yield from _stages(value)
    elif isinstance(node, list):
        for item in node:
            yield from _stages(item)


def _winning_plans(explained: dict[str, Any]) -> list[Any]:
    """The winning plans of an explain, wherever this server version puts them."""
    plans: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "winningPlan":
                    plans.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(explained)
    return plans


def assert_index_backed(explained: dict[str, Any], what: str) -> None:
    plans = _winning_plans(explained)
    assert plans, f"{what}: no winning plan in {explained}"
    stages = {stage for plan in plans for stage in _stages(plan)}
    assert "COLLSCAN" not in stages, f"{what} scans the collection: {stages}"
    assert stages & {"IXSCAN", "DISTINCT_SCAN", "COUNT_SCAN", "EXPRESS_IXSCAN"}, (what, stages)


async def _explain_all(store: EventStore, recorded: RecordingCollection) -> int:
    database, name = store.database, store.collection.name
    checked = 0
    for query, sort in recorded.finds:
        command: dict[str, Any] = {"find": name, "filter": query}
        if sort:
            command["sort"] = dict(sort) if isinstance(sort, list) else {sort: -1}
        assert_index_backed(await database.command({"explain": command}), f"find {query}")
        checked += 1
    for query in recorded.counts:
        explained = await database.command(
            {"explain": {"count": name, "query": query}, "verbosity": "queryPlanner"}
        )
        assert_index_backed(explained, f"count {query}")
        checked += 1
    for key, query in recorded.distincts:
        explained = await database.command(
            {"explain": {"distinct": name, "key": key, "query": query}}
        )
        assert_index_backed(explained, f"distinct {query}")
        checked += 1
    for pipeline in recorded.pipelines:
        explained = await database.command(
            {"explain": {"aggregate": name, "pipeline": pipeline, "cursor": {}}}
        )
        assert_index_backed(explained, f"aggregate {pipeline[0]}")
        checked += 1
    return checked


async def test_every_activity_query_is_served_by_an_index(mongo_store: EventStore) -> None:
    await mongo_store.collection.insert_many(_fixture_events())
    recorded = RecordingCollection(mongo_store.collection)
    filters = [
        EventFilter(),
        EventFilter(type="product.updated"),
        EventFilter(type="stock.*"),
        EventFilter(actor_id=ACTOR),
        EventFilter(entity_type="product", entity_id=PRODUCT),
        EventFilter(entity_id=PRODUCT),
        EventFilter(occurred_from=NOW - timedelta(days=2), occurred_to=NOW - timedelta(days=1)),
    ]
    for event_filter in filters:
        page = await service.list_activity(
            recorded, event_filter, cursor=None, limit=25, secret_key="k" * 32, show_costs=True
        )
        if page.next_cursor:
            await service.list_activity(
                recorded,
                event_filter,
                cursor=page.next_cursor,
                limit=25,
                secret_key="k" * 32,
                show_costs=True,
            )
        async for _ in service.iterate_activity(
            recorded, event_filter, show_costs=True, batch_size=200
        ):
            pass
    # The reference pipelines (analysts' starting point in docs/events.md) use indexes too.
    start, end = NOW - timedelta(days=7), NOW
    for bucket in Bucket:
        await repository.aggregate(recorded, repository.activity_pipeline(start, end, bucket))
    await repository.count_active_actors(recorded, NOW - timedelta(days=7))

    assert await _explain_all(mongo_store, recorded) > 25


async def test_pages_and_export_return_every_event_once_on_mongodb(
    mongo_store: EventStore,
) -> None:
    docs = _fixture_events()
    await mongo_store.collection.insert_many(docs)
    expected = sorted(
        ((d["occurred_at"], d["_id"]) for d in docs if d["type"].startswith("stock.")),
        reverse=True,
    )
    collected: list[tuple[datetime, str]] = []
    cursor = None
    while True:
        page = await service.list_activity(
            mongo_store.collection,
            EventFilter(type="stock.*"),
            cursor=cursor,
            limit=97,
            secret_key="k" * 32,
            show_costs=True,
        )
        collected.extend((item.occurred_at, item.id) for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    exported = [
        (e["occurred_at"], e["id"])
        async for e in service.iterate_activity(
            mongo_store.collection, EventFilter(type="stock.*"), show_costs=True, batch_size=113
        )
    ]
    assert collected == expected
    assert exported == expected


async def test_dashboards_agree_between_mongodb_and_the_in_process_store(
    mongo_store: EventStore,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    from tests.activity.conftest import new_collection

    docs = _fixture_events()
    in_process = new_collection()
    await in_process.insert_many([dict(d) for d in docs])
    await mongo_store.collection.insert_many(docs)
    for collection in (in_process, mongo_store.collection):
        await rollups.rebuild(sessionmaker, collection, NOW - timedelta(minutes=30))
    start, end = NOW - timedelta(days=8), NOW
    for bucket in Bucket:
        assert await service.activity_buckets(
            mongo_store.collection, start, end, bucket
        ) == await service.activity_buckets(in_process, start, end, bucket)
        assert await service.stock_flow(
            mongo_store.collection, session, start, end, bucket, None
        ) == await service.stock_flow(in_process, session, start, end, bucket, None)
    assert await service.top_actors(
        mongo_store.collection, start, end, 5
    ) == await service.top_actors(in_process, start, end, 5)


class FindRecorder:
    """A collection that remembers every `find`/`find_one` (collection name, filter,
    projection); `database[...]` gives recorders of the sibling collections (the rollups)."""

    def __init__(self, inner: Any, log: list[tuple[str, dict[str, Any], Any]]) -> None:
        self.inner, self.log = inner, log

    def find(self, query: dict[str, Any], projection: Any = None, **kwargs: Any) -> Any:
        self.log.append((self.inner.name, query, projection))
        return self.inner.find(query, projection, **kwargs)

    async def find_one(self, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.log.append((self.inner.name, query, None))
        return await self.inner.find_one(query, *args, **kwargs)

    @property
    def database(self) -> Any:
        recorder = self

        class Database:
            def __getitem__(self, name: str) -> FindRecorder:
                return FindRecorder(recorder.inner.database[name], recorder.log)

        return Database()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_dashboards_read_rollups_by_index_and_raw_events_only_outside_closed_hours(
    mongo_store: EventStore,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    """explain(): every dashboard query is index-backed; the raw events it reads are only those
    of the open hours (from the watermark on) and of a partial hour at the start of a range, and
    no more documents are examined than returned."""
    await mongo_store.collection.insert_many(_fixture_events())
    await rollups.rebuild(sessionmaker, mongo_store.collection, NOW - timedelta(minutes=30))
    closed_through = await rollups.watermark(mongo_store.rollups)
    assert closed_through == NOW - timedelta(hours=1)
    log: list[tuple[str, dict[str, Any], Any]] = []
    recorded = FindRecorder(mongo_store.collection, log)
    start, end = NOW - timedelta(days=7, minutes=17), NOW
    for bucket in Bucket:
        await service.activity_buckets(recorded, start, end, bucket)
        await service.stock_flow(recorded, session, start, end, bucket, None)
    await service.top_actors(recorded, start, end, 10)
    await service.event_figures(recorded, NOW)

    raw_examined = 0
    for name, query, projection in log:
        command: dict[str, Any] = {"find": name, "filter": query}
        if projection:
            command["projection"] = projection
        explained = await mongo_store.database.command(
            {"explain": command, "verbosity": "executionStats"}
        )
        stages = {stage for plan in _winning_plans(explained) for stage in _stages(plan)}
        assert "COLLSCAN" not in stages, (name, query, stages)
        assert stages & {"IXSCAN", "IDHACK", "EXPRESS_IXSCAN", "EXPRESS_CLUSTERED_IXSCAN"}, stages
        stats = explained["executionStats"]
        assert stats["totalDocsExamined"] <= stats["nReturned"] + 1, (name, query, stats)
        if name == "activity_events":
            bounds = query["occurred_at"]
            lower, upper = as_utc(bounds["$gte"]), bounds.get("$lt")
            open_hours = lower >= closed_through
            partial_head = upper is not None and as_utc(upper) - lower <= timedelta(hours=1)
            assert open_hours or partial_head, query
            raw_examined += stats["totalDocsExamined"]
    in_open_hour = await mongo_store.collection.count_documents(
        {"occurred_at": {"$gte": closed_through}}
    )
    # A handful of partial hours and the open hour per call, never the week's 2,300 events.
    assert raw_examined <= 12 * (in_open_hour + 40)


async def test_rollup_revisions_follow_late_events_and_not_redeliveries_on_mongodb(
    mongo_store: EventStore,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Dashboards cache parsed buckets by `rev`: on MongoDB each stored bucket's `rev` is the
    digest of what it holds as read back (BSON dates), a late event changes its hour's and
    day's `rev` (and the dashboards see it), a redelivered event changes none, and a warm read
    asks MongoDB for `bucket_start` and `rev` only."""
    docs = _fixture_events()
    await mongo_store.collection.insert_many(docs)
    await rollups.rebuild(sessionmaker, mongo_store.collection, NOW - timedelta(minutes=30))

    async def revisions() -> dict[str, str]:
        found = {}
        async for document in mongo_store.rollups.find({"granularity": {"$in": ["hour", "day"]}}):
            assert document["rev"] == rollups.revision(document)
            found[document["_id"]] = document["rev"]
        return found

    start, end = NOW - timedelta(days=7, minutes=17), NOW
    top = await service.top_actors(mongo_store.collection, start, end, 5)
    before = await revisions()
    late_at = NOW - timedelta(days=3, minutes=20)
    late = event("product.updated", late_at, id=str(uuid.uuid4()), actor=(ACTOR, "a@example.com"))
    replayed = dict(docs[0])
    for batch in ([late], [replayed]):
        await mongo_store.collection.replace_one({"_id": batch[0]["_id"]}, batch[0], upsert=True)
        async with sessionmaker() as session, session.begin():
            await rollups.refresh_after_delivery(session, mongo_store.collection, batch)
    after = await revisions()

    hour, day = rollups.floor_hour(late_at), rollups.floor_day(late_at)
    changed = {key for key in after if after[key] != before.get(key)}
    assert changed == {rollups.rollup_id("hour", hour), rollups.rollup_id("day", day)}
    now_top = await service.top_actors(mongo_store.collection, start, end, 5)
    counts = {row.actor_id: row.events for row in now_top}
    assert counts[str(ACTOR)] == {row.actor_id: row.events for row in top}.get(str(ACTOR), 0) + 1
    assert [(r.actor_id, r.email, r.events) for r in now_top] == [
        (r["actor_id"], r["email"], r["events"])
        for r in await repository.aggregate(
            mongo_store.collection, repository.top_actors_pipeline(start, end, 5)
        )
    ]
    log: list[tuple[str, dict[str, Any], Any]] = []
    assert await service.top_actors(FindRecorder(mongo_store.collection, log), start, end, 5) == (
        now_top
    )
    warm = [p for name, query, p in log if name == rollups.ROLLUPS and "bucket_start" in query]
    assert warm
    assert all(p == {"_id": 0, "bucket_start": 1, "rev": 1} for p in warm)
