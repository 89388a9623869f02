"""Two replicas on one database: each scheduled attempt of each delivery is made by exactly one
of them, the first attempts and the retries alike."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Any

from sqlalchemy import text

from stockroom.db.engine import create_engine, create_sessionmaker
from stockroom.webhooks.dispatcher import Dispatcher
from tests.webhooks.conftest import Clock, Receiver, make_endpoint, record_events

EVENTS = 60
ENDPOINTS = 3


def _counting(dispatcher: Dispatcher) -> list[int]:
    """Counts the attempts this dispatcher makes."""
    made = [0]
    attempt = dispatcher.attempt

    async def counted(*args: Any) -> Any:
        made[0] += 1
        return await attempt(*args)

    dispatcher.attempt = counted  # type: ignore[method-assign]
    return made


async def test_two_replicas_make_each_scheduled_attempt_once(
    fresh_database: str, receiver: Receiver, dispatcher_for: Any, clock: Clock
) -> None:
    receiver.fail_first = True  # every delivery: 500, then (its retry) 200
    engines = [create_engine(fresh_database, pool_size=3) for _ in range(2)]
    replicas = [
        dispatcher_for(
            create_sessionmaker(engine), clock=clock, timeout_s=5.0, concurrency=8,
            poll_interval_s=0.05,
        )
        for engine in engines
    ]  # fmt: skip
    made = [_counting(replica) for replica in replicas]
    sessionmaker = create_sessionmaker(engines[0])
    tasks: list[asyncio.Task[None]] = []
    try:
        for n in range(ENDPOINTS):
            await make_endpoint(sessionmaker, f"{receiver.url}?endpoint={n}", ["product.*"])
        tasks = [asyncio.create_task(replica.run()) for replica in replicas]
        for _ in range(EVENTS // 10):  # events keep arriving while the replicas work
            await record_events(sessionmaker, *["product.updated"] * 10)

        async def count(sql: str) -> int:
            async with sessionmaker() as session:
                return int(await session.scalar(text(sql)) or 0)

        async def wait_for(sql: str, expected: int) -> None:
            for _ in range(600):
                if await count(sql) == expected:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"{sql}: {await count(sql)}, expected {expected}")

        total = EVENTS * ENDPOINTS
        await wait_for("SELECT count(*) FROM webhook_deliveries WHERE attempts >= 1", total)
        clock.advance(seconds=6)  # every retry (5 s, jittered by up to 10%) is due
        await wait_for("SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'", total)
        await asyncio.sleep(0.5)  # room for a duplicate attempt to show itself

        per_delivery = collections.Counter(
            (r.path, r.headers["webhook-id"]) for r in list(receiver.received)
        )
        assert len(per_delivery) == total
        assert set(per_delivery.values()) == {2}  # the failed first attempt and the retry
        assert await count("SELECT count(*) FROM webhook_attempts") == 2 * total
        assert await count("SELECT max(attempts) FROM webhook_deliveries") == 2
        assert made[0][0] + made[1][0] == 2 * total
        assert min(made[0][0], made[1][0]) > 0, made  # both replicas took part
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for engine in engines:
            await engine.dispose()
