"""The webhook dispatcher: claims due deliveries, makes one attempt each, records the outcomes.

- Claim: `FOR UPDATE SKIP LOCKED` in a short transaction that moves the claimed rows'
  `next_attempt_at` to the end of a lease (3 x the attempt timeout) and stamps them with this
  claim's id. Any number of dispatchers (API replicas, `stockroom relay` processes) share the
  work; each scheduled attempt is made by one of them.
- Attempt: a signed POST through the guarded client, outside any transaction.
- Record: the outcomes, in batches, in one transaction each, only for rows still carrying this
  claim's id. The next attempt is scheduled (retry schedule below), or the delivery is done.
- Crash: a dispatcher that dies mid-attempt leaves its rows claimed; they fall due when the
  lease ends and are attempted again, with the same `webhook-id` (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.events.wakeup import subscription
from stockroom.redaction import without_costs
from stockroom.types import utcnow
from stockroom.webhooks import repository, service
from stockroom.webhooks.client import AttemptOutcome, WebhookClient
from stockroom.webhooks.metrics import (
    DELIVERY_ATTEMPTS,
    DELIVERY_BACKLOG,
    DELIVERY_OLDEST_AGE,
)
from stockroom.webhooks.repository import AttemptRecord, ClaimedDelivery
from stockroom.webhooks.signing import signature_header

log = structlog.get_logger("stockroom.webhooks")

Sessionmaker = async_sessionmaker[AsyncSession]
Clock = Callable[[], datetime]

# Seconds before retry n (after the first attempt fails, retry 1 comes about 5 s later, ...):
# about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, then the delivery is `failed` (8 attempts over
# about 27.6 hours). Each delay is moved by up to 10% either way so that retries spread out.
RETRY_DELAYS_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
JITTER = 0.1
DISABLE_AFTER = timedelta(days=5)
GAUGES_EVERY_S = 1.0
# The shortest time between two claims (see `Dispatcher.run`): what a delivery may wait for
# its batch, at most.
BATCH_WINDOW_S = 0.05
FAILURE_LOG_EVERY_S = 60.0


def retry_delay(failed_attempts: int, rng: random.Random | None = None) -> float | None:
    """Seconds until the next attempt after `failed_attempts` failed ones; None: give up."""
    if failed_attempts < 1 or failed_attempts > len(RETRY_DELAYS_S):
        return None
    return RETRY_DELAYS_S[failed_attempts - 1] * (rng or random).uniform(1 - JITTER, 1 + JITTER)


def request_body(payload: dict[str, Any], include_costs: bool) -> bytes:
    """The activity event as JSON, cost fields removed unless the endpoint may see them."""
    event = dict(payload)
    if not include_costs:
        for key in ("changes", "data"):
            if event.get(key):
                event[key] = without_costs(event[key])
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def bodies_of(deliveries: Iterable[ClaimedDelivery]) -> dict[tuple[uuid.UUID, bool], bytes]:
    """The request bodies of a claimed batch, built once per event and cost variant (the
    deliveries of one event to several endpoints are claimed together)."""
    bodies: dict[tuple[uuid.UUID, bool], bytes] = {}
    for delivery in deliveries:
        key = (delivery.event_id, delivery.include_costs)
        if key not in bodies:
            bodies[key] = request_body(delivery.payload, delivery.include_costs)
    return bodies


def signing_keys(delivery: ClaimedDelivery, now: datetime) -> list[str]:
    keys = [delivery.secret]
    expires = delivery.previous_secret_expires_at
    if delivery.previous_secret and expires is not None and expires > now:
        keys.append(delivery.previous_secret)
    return keys


def request_headers(delivery: ClaimedDelivery, body: bytes, now: datetime) -> dict[str, str]:
    message_id = str(delivery.event_id)
    timestamp = int(now.timestamp())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            signing_keys(delivery, now), message_id, timestamp, body
        ),
        "content-type": "application/json",
    }


class Dispatcher:
    def __init__(
        self,
        sessionmaker: Sessionmaker,
        client: WebhookClient,
        *,
        concurrency: int = 50,
        poll_interval_s: float = 0.5,
        batch_window_s: float = BATCH_WINDOW_S,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.client = client
        self.concurrency = concurrency
        self.poll_interval_s = poll_interval_s
        self.batch_window_s = batch_window_s
        self.clock = clock
        self.rng = rng or random.Random()
        # Longer than any attempt can take (the client bounds each one to its timeout).
        self.lease = timedelta(seconds=client.timeout_s * 3)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._finished: list[AttemptRecord] = []
        self._progress = asyncio.Event()
        self._failing_since: float | None = None
        self._last_failure_log = 0.0
        self._next_gauges = 0.0

    # --- one round, for tests and for the loop ---------------------------------------------

    async def claim(self, limit: int) -> list[tuple[ClaimedDelivery, uuid.UUID]]:
        if limit <= 0:
            return []
        async with self.sessionmaker() as session, session.begin():
            return await self._claim_in(session, limit)

    async def _claim_in(
        self, session: AsyncSession, limit: int
    ) -> list[tuple[ClaimedDelivery, uuid.UUID]]:
        lease_id = uuid.uuid4()
        now = self.clock()
        claimed = await repository.claim_due_deliveries(
            session, now=now, lease_until=now + self.lease, lease_id=lease_id, limit=limit
        )
        return [(delivery, lease_id) for delivery in claimed]

    async def attempt(
        self, delivery: ClaimedDelivery, lease_id: uuid.UUID, body: bytes | None = None
    ) -> AttemptRecord:
        """One signed POST; the record of its outcome (nothing written yet). `body`: the
        delivery's request body when already built (see `bodies_of`)."""
        started = self.clock()
        if body is None:
            body = request_body(delivery.payload, delivery.include_costs)
        outcome = await self.client.post(
            delivery.url, body, request_headers(delivery, body, started)
        )
        return self._record_of(delivery, lease_id, started, outcome)

    def _record_of(
        self,
        delivery: ClaimedDelivery,
        lease_id: uuid.UUID,
        started: datetime,
        outcome: AttemptOutcome,
    ) -> AttemptRecord:
        status, next_attempt = "succeeded", None
        if not outcome.succeeded:
            delay = retry_delay(delivery.attempts + 1, self.rng)
            if delay is None or outcome.status_code == 410:
                status = "failed"
            else:
                status, next_attempt = "pending", self.clock() + timedelta(seconds=delay)
        DELIVERY_ATTEMPTS.labels("retrying" if status == "pending" else status).inc()
        return AttemptRecord(
            delivery_id=delivery.id,
            lease_id=lease_id,
            attempted_at=started,
            duration_ms=outcome.duration_ms,
            status_code=outcome.status_code,
            error=outcome.error,
            excerpt=outcome.excerpt,
            status=status,
            next_attempt_at=next_attempt,
        )

    async def record(self, records: list[AttemptRecord]) -> None:
        """Write outcomes (one statement for the batch); clear the failure clock of endpoints
        that were failing and succeeded; disable those that answered 410 or failed for 5 days."""
        if not records:
            return
        async with self.sessionmaker() as session, session.begin():
            await self._record_in(session, records)

    async def _record_in(self, session: AsyncSession, records: list[AttemptRecord]) -> None:
        now = self.clock()
        owned = await repository.record_attempts(session, records)
        mine = [r for r in records if r.delivery_id in owned]
        healthy = {owned[r.delivery_id].endpoint_id for r in mine if r.status == "succeeded"}
        failing = {
            owned[r.delivery_id].endpoint_id for r in mine if r.status != "succeeded"
        } - healthy
        gone = {owned[r.delivery_id].endpoint_id for r in mine if r.status_code == 410}
        # Most batches are all successes to healthy endpoints: no endpoint statement at all.
        recovered = {
            owned[r.delivery_id].endpoint_id
            for r in mine
            if r.status == "succeeded" and owned[r.delivery_id].endpoint_failing
        }
        if recovered:
            await repository.mark_endpoints_healthy(session, sorted(recovered))
        to_disable = dict.fromkeys(gone, "the endpoint answered 410 Gone")
        if failing:
            since = await repository.mark_endpoints_failing(session, sorted(failing), now)
            for endpoint, first_failure in since.items():
                if now - first_failure >= DISABLE_AFTER and endpoint not in to_disable:
                    to_disable[endpoint] = "every delivery failed for 5 days"
        for endpoint in sorted(to_disable):
            await service.disable_endpoint(session, endpoint, to_disable[endpoint])

    async def run_once(self) -> int:
        """Claim what is due, attempt it all, record: returns the number of attempts."""
        claimed = await self.claim(self.concurrency)
        bodies = bodies_of(d for d, _lease in claimed)
        records = await asyncio.gather(
            *(self.attempt(d, lease, bodies[d.event_id, d.include_costs]) for d, lease in claimed)
        )
        await self.record(list(records))
        return len(records)

    async def drain(self, *, max_rounds: int = 100) -> int:
        """`run_once` until nothing is due (tests)."""
        total = 0
        for _ in range(max_rounds):
            attempted = await self.run_once()
            total += attempted
            if attempted == 0:
                break
        return total

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled: attempts run concurrently (up to `concurrency`), outcomes are
        recorded as they arrive, batched."""
        wake = asyncio.Event()
        with subscription(wake):  # new deliveries are committed with outbox rows
            log.info("webhook dispatcher started", concurrency=self.concurrency)
            try:
                while True:
                    wake.clear()
                    self._progress.clear()
                    ticked = time.monotonic()
                    claimed_all = await self._tick()
                    if not claimed_all:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(self.poll_interval_s):
                                await _first(wake, self._progress)
                    # At most one tick per batch window: under load, each commit and each
                    # finished attempt would otherwise cost a claim and a record transaction
                    # of their own; gathered, they cost two per window.
                    pause = ticked + self.batch_window_s - time.monotonic()
                    if pause > 0:
                        await asyncio.sleep(pause)
            finally:
                for task in self._in_flight:
                    task.cancel()
                with contextlib.suppress(BaseException):
                    async with asyncio.timeout(2):
                        await self.record(self._take_finished())

    async def _tick(self) -> bool:
        """Record finished attempts, start new ones; True when the claim took all it asked."""
        try:
            finished = self._take_finished()
            free = self.concurrency - len(self._in_flight)
            try:
                # One transaction: the finished attempts' outcomes, then the next claim (the
                # rows just recorded for a retry are not due, so it cannot take them again).
                async with self.sessionmaker() as session, session.begin():
                    if finished:
                        await self._record_in(session, finished)
                    claimed = await self._claim_in(session, free) if free > 0 else []
            except Exception:
                self._finished[:0] = finished  # kept for the next tick; leases protect the rows
                raise
            bodies = bodies_of(d for d, _lease in claimed)
            for delivery, lease_id in claimed:
                body = bodies[delivery.event_id, delivery.include_costs]
                task = asyncio.create_task(self._attempt_in_background(delivery, lease_id, body))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            now = time.monotonic()
            if now >= self._next_gauges:
                self._next_gauges = now + GAUGES_EVERY_S
                await refresh_gauges(self.sessionmaker)
            self._report(None)
            return bool(claimed) and len(claimed) == free
        except Exception as exc:  # PostgreSQL unreachable, ...: try again on the next tick
            self._report(f"{type(exc).__name__}: {exc}")
            return False

    async def _attempt_in_background(
        self, delivery: ClaimedDelivery, lease_id: uuid.UUID, body: bytes
    ) -> None:
        record = await self.attempt(delivery, lease_id, body)
        # Appended after the await, to the list as it is now: `self._finished.append(await ...)`
        # would bind the list of before the attempt, which a tick may have taken meanwhile, and
        # the outcome would be lost (the delivery attempted again when its lease ended).
        self._finished.append(record)
        self._progress.set()

    def _take_finished(self) -> list[AttemptRecord]:
        finished, self._finished = self._finished, []
        return finished

    def _report(self, error: str | None) -> None:
        now = time.monotonic()
        if error is not None:
            if self._failing_since is None or now - self._last_failure_log >= FAILURE_LOG_EVERY_S:
                log.warning("webhook dispatcher failing; deliveries wait and retry", error=error)
                self._last_failure_log = now
            self._failing_since = self._failing_since or now
        elif self._failing_since is not None:
            log.info("webhook dispatcher recovered", after_s=round(now - self._failing_since, 1))
            self._failing_since = None


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def refresh_gauges(sessionmaker: Sessionmaker) -> repository.DeliveryBacklog:
    async with sessionmaker() as session, session.begin():
        backlog = await repository.delivery_backlog(session)
    DELIVERY_BACKLOG.set(backlog.pending)
    DELIVERY_OLDEST_AGE.set(backlog.oldest_age_s)
    return backlog
