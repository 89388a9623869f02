"""Outbox relay: throughput and commit-to-delivery delay, with the in-process event store.

    uv run python bench/outbox.py [--events 20000] [--writers 8] [--per-transaction 1]

Starts an embedded PostgreSQL in a temporary folder and migrates it, then:

1. backlog drain: records N events through `stockroom.events.record` (committed by W concurrent
   writers, relay stopped), then times one relay draining the backlog (`deliver_pending`,
   batch size RELAY_BATCH_SIZE's default) into the in-process store; then marks them pending
   again and drains them into a store that discards writes, which is the relay's own cost;
2. live delay, wake-up: the relay loop runs (as inside `stockroom serve`) while the writers commit
   N more events; for each event, the delay from its commit returning to the bulk write that
   stored it returning;
3. live delay, polling only: the same with the in-process wake-up disabled, i.e. what a relay in
   another process (`stockroom relay`) sees with the default 0.5 s poll interval.

Every loop is bounded; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.context import Actor, Context
from stockroom.db import migrate
from stockroom.db.embedded import async_url, ensure_database, start_embedded_postgres
from stockroom.db.engine import create_engine, create_sessionmaker
from stockroom.events import record
from stockroom.events import relay as relay_module
from stockroom.events.relay import Relay, deliver_pending, outbox_status
from stockroom.events.store import EventStore, in_process_event_store
from stockroom.settings import Settings

ACTOR = Actor(id=uuid.uuid4(), email="bench@example.com")


def context(i: int) -> Context:
    return Context(
        actor=ACTOR,
        request_id=f"bench-{i}",
        ip="127.0.0.1",
        user_agent="bench/outbox",
        method="POST",
        path="/api/v1/stock/movements",
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def write_events(
    sessionmaker: async_sessionmaker[AsyncSession],
    products: list[uuid.UUID],
    count: int,
    writers: int,
    per_transaction: int,
    committed: dict[str, float] | None = None,
) -> float:
    """Commit `count` stock.movement_posted events; returns the elapsed seconds."""
    transactions = count // per_transaction
    queue: asyncio.Queue[int] = asyncio.Queue()
    for t in range(transactions):
        queue.put_nowait(t)

    async def writer() -> None:
        while not queue.empty():
            t = queue.get_nowait()
            ids = []
            async with sessionmaker() as session, session.begin():
                for k in range(per_transaction):
                    i = t * per_transaction + k
                    product = products[i % len(products)]
                    ids.append(
                        record(
                            session,
                            "stock.movement_posted",
                            context(i),
                            entity=("product", product),
                            data={
                                "movement_id": uuid.uuid4(),
                                "warehouse_id": products[0],
                                "type": "sale",
                                "quantity": -1,
                                "on_hand_after": 1000 - i,
                                "unit_price": Decimal("19.90"),
                                "reference": f"SO-{i}",
                            },
                        )
                    )
            done = time.perf_counter()
            if committed is not None:
                for event_id in ids:
                    committed[str(event_id)] = done

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return time.perf_counter() - started


class StampingStore:
    """The in-process store, stamping the moment each document's bulk write returned."""

    def __init__(self, store: EventStore) -> None:
        self.inner = store
        self.client, self.database = store.client, store.database
        self.in_process, self.initialized = True, True
        self.collection = self
        self.stored: dict[str, float] = {}

    async def bulk_write(self, requests: list[Any], **kwargs: Any) -> Any:
        result = await self.inner.collection.bulk_write(requests, **kwargs)
        done = time.perf_counter()
        for request in requests:
            self.stored[request._filter["_id"]] = done
        return result

    async def initialize(self) -> bool:
        return True


class NullStore:
    """A store that accepts every write instantly and keeps nothing."""

    in_process = initialized = True

    def __init__(self) -> None:
        self.collection = self

    async def bulk_write(self, requests: list[Any], **kwargs: Any) -> None:
        return None


async def session_vacuum(engine: Any) -> None:
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM ANALYZE outbox_events"))


@contextlib.contextmanager
def no_wakeup() -> Iterator[None]:
    original = relay_module.subscription
    relay_module.subscription = lambda wake: contextlib.nullcontext()  # type: ignore[assignment]
    try:
        yield
    finally:
        relay_module.subscription = original


async def live_delays(
    sessionmaker: async_sessionmaker[AsyncSession],
    products: list[uuid.UUID],
    args: argparse.Namespace,
    count: int,
) -> tuple[list[float], float]:
    settings = Settings(_env_file=None, secret_key="x" * 40)  # type: ignore[call-arg]
    store = StampingStore(in_process_event_store())
    task = asyncio.create_task(Relay(sessionmaker, store, settings).run())  # type: ignore[arg-type]
    committed: dict[str, float] = {}
    try:
        elapsed = await write_events(
            sessionmaker, products, count, args.writers, args.per_transaction, committed
        )
        deadline = time.monotonic() + 120
        while len(store.stored) < len(committed) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    delays = [store.stored[k] - committed[k] for k in committed if k in store.stored]
    if len(delays) != len(committed):
        status = await outbox_status(sessionmaker)
        raise SystemExit(
            f"{len(committed) - len(delays)} of {len(committed)} events not delivered "
            f"in time ({len(store.stored)} stored, outbox {status})"
        )
    return delays, elapsed


def report_delays(label: str, delays: list[float], elapsed: float) -> None:
    print(
        f"{label}: {len(delays)} events committed at {len(delays) / elapsed:,.0f}/s; "
        f"commit-to-delivery p50 {percentile(delays, 50) * 1000:.1f} ms, "
        f"p99 {percentile(delays, 99) * 1000:.1f} ms, "
        f"max {max(delays) * 1000:.1f} ms, mean {statistics.fmean(delays) * 1000:.1f} ms"
    )


async def run(url: str, args: argparse.Namespace) -> None:
    engine = create_engine(url, pool_size=args.writers + 2, max_overflow=2)
    sessionmaker = create_sessionmaker(engine)
    products = [uuid.uuid4() for _ in range(1000)]
    try:
        elapsed = await write_events(
            sessionmaker, products, args.events, args.writers, args.per_transaction
        )
        print(
            f"recorded {args.events:,} events through record() in {elapsed:.2f} s "
            f"({args.events / elapsed:,.0f} events/s, {args.writers} writers, "
            f"{args.per_transaction} per transaction)"
        )
        status = await outbox_status(sessionmaker)
        store = in_process_event_store()
        started = time.perf_counter()
        delivered = await deliver_pending(sessionmaker, store, batch_size=args.batch_size)
        drain = time.perf_counter() - started
        stored = await store.collection.count_documents({})
        assert delivered == stored == status.backlog == args.events, (delivered, stored, status)
        print(
            f"relay drained a backlog of {delivered:,} events in {drain:.2f} s: "
            f"{delivered / drain:,.0f} events/s into the in-process store (batch {args.batch_size})"
        )

        # The same backlog again into a store that discards writes: the relay's own cost
        # (claim, convert, mark delivered), without mongomock's.
        async with sessionmaker() as session, session.begin():
            await session.execute(text("UPDATE outbox_events SET delivered_at = NULL"))
        await session_vacuum(engine)
        started = time.perf_counter()
        delivered = await deliver_pending(sessionmaker, NullStore(), batch_size=args.batch_size)  # type: ignore[arg-type]
        drain = time.perf_counter() - started
        print(
            f"relay drained {delivered:,} events in {drain:.2f} s: {delivered / drain:,.0f} "
            "events/s into a store that discards writes (PostgreSQL side alone)"
        )

        delays, elapsed = await live_delays(sessionmaker, products, args, args.events)
        report_delays("live, wake-up on commit", delays, elapsed)
        with no_wakeup():
            delays, elapsed = await live_delays(sessionmaker, products, args, args.poll_events)
        report_delays("live, polling only (0.5 s)", delays, elapsed)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--poll-events", type=int, default=5_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--per-transaction", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="stockroom-bench-outbox-"))
    server = start_embedded_postgres(data_dir)
    try:
        ensure_database(server)
        url = async_url(server)
        migrate.upgrade(url)  # outside the event loop: Alembic's env runs its own
        asyncio.run(run(url, args))
    finally:
        server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
