"""Activity read side: dashboards and a filtered `/activity` page over a large event store.

    uv run python bench/activity.py                       # 200,000 events, in-process store
    uv run python bench/activity.py --events 25000 --raw  # with the raw "before" timings
    MONGODB_URL=mongodb://... uv run python bench/activity.py   # a real MongoDB

It fills the store with synthetic events shaped like the relay writes them (30 days of traffic:
stock movements, product changes, logins, failed logins; 200 actors, 5 warehouses) and their
rollups (folded as they load, as the in-process store's rebuild at start does), then times, in
the same run, each dashboard both ways: before, one aggregation over the raw events of the range
(what the endpoints ran before rollups); after, the service call behind the endpoint (closed
buckets from the rollups, the open hour and partial edges from raw events), and their ratio.
Then the `/activity` pages (first page, a filtered page and the page after it). The HTTP layer
adds the same small constant to each. Numbers from the in-process store (mongomock, pure
Python) say little about MongoDB, which answers from its indexes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from stockroom.activity import repository, service
from stockroom.activity.schemas import Bucket, EventFilter
from stockroom.events import rollups

BATCH = 20_000
SECRET = "bench-secret-key-0123456789abcdef0123456789abcdef"
TYPES = [
    ("stock.movement_posted", 45),
    ("product.updated", 20),
    ("auth.login_succeeded", 15),
    ("product.created", 8),
    ("auth.login_failed", 5),
    ("stock.transfer_created", 4),
    ("stock.transfer_completed", 3),
]


def synthetic_events(count: int, now: datetime, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    names = [name for name, _ in TYPES]
    weights = [weight for _, weight in TYPES]
    actors = [(str(uuid.UUID(int=i + 1)), f"user{i}@example.com") for i in range(200)]
    warehouses = [str(uuid.UUID(int=10_000 + i)) for i in range(5)]
    span_ms = 30 * 86_400_000
    docs = []
    for kind in rng.choices(names, weights, k=count):
        when = now - timedelta(milliseconds=rng.randrange(span_ms))
        actor_id, email = rng.choice(actors)
        doc: dict[str, Any] = {
            "_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "type": kind,
            "occurred_at": when,
            "actor": None if kind == "auth.login_failed" else {"id": actor_id, "email": email},
            "entity": {"type": "product", "id": str(uuid.UUID(int=rng.randrange(5000)))},
            "request": {
                "id": "r",
                "ip": "10.0.0.1",
                "user_agent": "bench",
                "method": "POST",
                "path": "/api/v1/stock-movements",
            },
            "changes": None,
            "data": None,
        }
        if kind == "stock.movement_posted":
            quantity = rng.randrange(1, 20)
            warehouse = rng.randrange(len(warehouses))
            doc["data"] = {
                "warehouse_id": warehouses[warehouse],
                "warehouse_code": f"WH-{warehouse}",
                "type": "receipt",
                "quantity": quantity,
                "signed_quantity": rng.choice((1, -1)) * quantity,
            }
        docs.append(doc)
    return docs


async def timed(label: str, call: Callable[[], Awaitable[Any]], repeat: int) -> dict[str, Any]:
    times = []
    result: Any = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await call()
        times.append(time.perf_counter() - started)
    size = len(result) if isinstance(result, list) else len(getattr(result, "items", []) or [])
    return {
        "label": label,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "first_s": times[0],  # dashboards: the read that parses the buckets (a cold cache)
        "rows": size,
    }


# --- before: the dashboards as one aggregation over the raw events of the range ---------------


async def figures_from_raw(collection: Any, now: datetime) -> Any:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        await repository.count(collection, repository.since_midnight_query(midnight)),
        await repository.count(
            collection, repository.since_midnight_query(midnight, repository.MOVEMENT_EVENT)
        ),
        await repository.count(
            collection,
            {
                "type": repository.FAILED_LOGIN_EVENT,
                "occurred_at": {"$gte": now - timedelta(hours=24)},
            },
        ),
        await repository.count_active_actors(collection, now - timedelta(days=7)),
    )


def from_raw(collection: Any, pipeline: list[dict[str, Any]]) -> Callable[[], Awaitable[Any]]:
    return lambda: repository.aggregate(collection, pipeline)


def resident_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--raw",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the raw aggregations (the 'before'); default: only up to 50,000 events, "
        "as each one costs minutes over 200,000 events in the in-process store",
    )
    args = parser.parse_args()
    with_raw = args.raw if args.raw is not None else args.events <= 50_000

    now = datetime.now(UTC)
    url = os.environ.get("MONGODB_URL")
    if url:
        from stockroom.events.store import mongodb_event_store

        store = mongodb_event_store(url, f"stockroom_bench_{uuid.uuid4().hex[:8]}")
        backend = f"MongoDB at {url.split('@')[-1]}"
    else:
        from stockroom.events.store import in_process_event_store

        store = in_process_event_store()
        backend = "in-process store (mongomock-motor)"
    await store.initialize()
    collection = store.collection
    try:
        rss_before = resident_mib()
        started = time.perf_counter()
        builder = rollups.RollupBuilder()
        for offset in range(0, args.events, BATCH):
            batch = synthetic_events(min(BATCH, args.events - offset), now, seed=offset)
            builder.add(batch)
            await collection.insert_many(batch, ordered=False)
            done = offset + len(batch)
            print(
                f"  loaded {done:,} / {args.events:,} events "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        await builder.write(collection, now)
        built = time.perf_counter() - started
        print(
            f"{args.events:,} events into the {backend} in {loaded:.1f} s (rollups folded "
            f"alongside), rollups written in {built:.2f} s; "
            f"{await store.rollups.count_documents({}):,} rollup documents; "
            f"resident memory {resident_mib():,.0f} MiB ({resident_mib() - rss_before:+,.0f})"
        )

        day = now - timedelta(days=1)
        month = now - timedelta(days=30)
        fortnight = now - timedelta(days=14)
        with_session: Any = NoSession()
        dashboards: list[tuple[str, Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]] = [
            (
                "summary (event-store figures)",
                lambda: figures_from_raw(collection, now),
                lambda: service.event_figures(collection, now),
            ),
            (
                "activity, 24 h hourly",
                from_raw(collection, repository.activity_pipeline(day, now, Bucket.HOUR)),
                lambda: service.activity_buckets(collection, day, now, Bucket.HOUR),
            ),
            (
                "activity, 30 d daily",
                from_raw(collection, repository.activity_pipeline(month, now, Bucket.DAY)),
                lambda: service.activity_buckets(collection, month, now, Bucket.DAY),
            ),
            (
                "stock-flow, 14 d daily",
                from_raw(
                    collection, repository.stock_flow_pipeline(fortnight, now, Bucket.DAY, None)
                ),
                lambda: service.stock_flow(
                    collection, with_session, fortnight, now, Bucket.DAY, None
                ),
            ),
            (
                "top-actors, 30 d",
                from_raw(collection, repository.top_actors_pipeline(month, now, 10)),
                lambda: service.top_actors(collection, month, now, 10),
            ),
        ]
        print(
            f"{'dashboard':32} {'raw median s':>13} {'rollups median s':>17} {'ratio':>8} "
            f"{'rows':>6} {'first s':>8}"
        )
        for label, before, after in dashboards:
            rolled = await timed(label, after, args.repeat)
            if with_raw:
                raw = await timed(label, before, args.repeat)
                raw_s = f"{raw['median_s']:13.4f}"
                ratio = f"{raw['median_s'] / rolled['median_s']:7.0f}x"
            else:
                raw_s, ratio = f"{'(not run)':>13}", f"{'-':>8}"
            print(
                f"{label:32} {raw_s} {rolled['median_s']:17.4f} {ratio} {rolled['rows']:6} "
                f"{rolled['first_s']:8.4f}"
            )

        stock_filter = EventFilter(type="stock.*", occurred_from=now - timedelta(days=7))
        actor_filter = EventFilter(actor_id=uuid.UUID(int=7))
        first = await service.list_activity(
            collection, stock_filter, cursor=None, limit=50, secret_key=SECRET, show_costs=True
        )
        pages: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            (
                "/activity, first page",
                lambda: service.list_activity(
                    collection,
                    EventFilter(),
                    cursor=None,
                    limit=50,
                    secret_key=SECRET,
                    show_costs=True,
                ),
            ),
            (
                "/activity type=stock.* 7 d, page 1",
                lambda: service.list_activity(
                    collection,
                    stock_filter,
                    cursor=None,
                    limit=50,
                    secret_key=SECRET,
                    show_costs=True,
                ),
            ),
            (
                "/activity type=stock.* 7 d, page 2",
                lambda: service.list_activity(
                    collection,
                    stock_filter,
                    cursor=first.next_cursor,
                    limit=50,
                    secret_key=SECRET,
                    show_costs=True,
                ),
            ),
            (
                "/activity actor_id=..., page 1",
                lambda: service.list_activity(
                    collection,
                    actor_filter,
                    cursor=None,
                    limit=50,
                    secret_key=SECRET,
                    show_costs=True,
                ),
            ),
        ]
        print(f"{'page':40} {'median s':>10} {'min s':>10} {'rows':>6}")
        for label, call in pages:
            row = await timed(label, call, args.repeat)
            print(f"{row['label']:40} {row['median_s']:10.4f} {row['min_s']:10.4f} {row['rows']:6}")
    finally:
        if url:
            await store.client.drop_database(store.database.name)
        store.close()


class NoSession:
    """Stands in for the PostgreSQL session of the warehouse-code lookup: the synthetic
    warehouses are in no catalog, so the lookup is skipped by carrying codes in the events."""


if __name__ == "__main__":
    asyncio.run(main())
