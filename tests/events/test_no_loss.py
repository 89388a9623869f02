"""The audit trail is never lost by a restart, a retention setting or a replay, in any mode.

The embedded default keeps its events in the in-process store, rebuilt from the outbox at start:
so the outbox keeps every event that store holds, and only EVENT_RETENTION_DAYS removes events.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from stockroom.events.relay import (
    Relay,
    deliver_pending,
    expire_events,
    prune_delivered,
    rebuild_in_process_store,
    replay,
)
from stockroom.events.store import EventStore, in_process_event_store
from stockroom.main import create_app
from tests.conftest import http_client, make_settings
from tests.events.conftest import (
    Sessionmaker,
    durable_stand_in_store,
    outbox_rows,
    record_committed,
)

ADMIN = {"email": "boss@example.com", "password": "boss pass 1"}


async def backdate(sessionmaker: Sessionmaker, ids: list[uuid.UUID], days: int) -> None:
    """Move events (and their delivery) `days` into the past, in the outbox and its payload."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                """
                UPDATE outbox_events SET
                    occurred_at = occurred_at - make_interval(days => :days),
                    delivered_at = delivered_at - make_interval(days => :days),
                    payload = jsonb_set(payload, '{occurred_at}', to_jsonb(
                        to_char((occurred_at - make_interval(days => :days)) AT TIME ZONE 'UTC',
                                'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')))
                WHERE id = ANY(:ids)
                """
            ),
            {"ids": ids, "days": days},
        )


async def stored_ids(store: EventStore) -> set[str]:
    return {doc["_id"] async for doc in store.collection.find({}, {"_id": 1})}


async def admin_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    tokens = (await client.post("/api/v1/auth/login-json", json=ADMIN)).json()
    client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    return client


async def test_events_older_than_the_outbox_retention_survive_its_job_and_a_restart(
    fresh_database: str,
) -> None:
    """The issue's reproduction: delivered rows backdated 40 days, the relay's retention job
    (OUTBOX_RETENTION_DAYS=30) runs, the server restarts: nothing is missing."""
    settings = make_settings(
        fresh_database,
        first_admin_email=ADMIN["email"],
        first_admin_password=ADMIN["password"],
        outbox_retention_days=30,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), http_client(app) as client:
        await admin_client(client)  # a login: one more event
        sessionmaker = app.state.sessionmaker
        old = await record_committed(sessionmaker, [uuid.uuid4() for _ in range(5)])
        await deliver_pending(sessionmaker, app.state.event_store)
        await backdate(sessionmaker, old, days=40)
        relay = Relay(sessionmaker, app.state.event_store, settings)
        await relay.tick()  # delivers, prunes, expires: the chores of the relay loop
        assert {row.id for row in await outbox_rows(sessionmaker)} >= set(old)

    restarted = create_app(settings)
    async with restarted.router.lifespan_context(restarted), http_client(restarted) as client:
        await admin_client(client)
        since = (datetime.now(UTC) - timedelta(days=45)).isoformat()
        page = await client.get("/api/v1/activity", params={"limit": 500, "from": since})
        assert page.status_code == 200, page.text
        listed = {item["id"] for item in page.json()["items"]}
        assert {str(i) for i in old} <= listed
        daily = await client.get(
            "/api/v1/dashboard/activity", params={"bucket": "day", "from": since}
        )
        forty_days_ago = (datetime.now(UTC) - timedelta(days=40)).date().isoformat()
        old_days = [r for r in daily.json() if r["bucket_start"][:10] <= forty_days_ago]
        assert sum(r["count"] for r in old_days if r["type"] == "widget.updated") == 5


async def test_in_process_deliveries_are_never_pruned_whatever_the_outbox_retention(
    fresh_sessionmaker: Sessionmaker,
) -> None:
    ids = await record_committed(fresh_sessionmaker, [uuid.uuid4(), None, uuid.uuid4()])
    store = in_process_event_store()
    await deliver_pending(fresh_sessionmaker, store)
    await backdate(fresh_sessionmaker, ids, days=400)

    assert await prune_delivered(fresh_sessionmaker, 30) == 0
    restarted = in_process_event_store()
    assert await rebuild_in_process_store(fresh_sessionmaker, restarted) == 3
    assert await stored_ids(restarted) == {str(i) for i in ids}


async def test_event_retention_removes_old_events_in_both_modes_alike(
    fresh_sessionmaker: Sessionmaker,
) -> None:
    old = await record_committed(fresh_sessionmaker, [uuid.uuid4(), uuid.uuid4()])
    recent = await record_committed(fresh_sessionmaker, [uuid.uuid4()])
    in_process = in_process_event_store(retention_days=10)
    await deliver_pending(fresh_sessionmaker, in_process)
    await backdate(fresh_sessionmaker, old, days=11)
    # The in-process store took the events before they were backdated: set them back too.
    for doc in [
        d async for d in in_process.collection.find({"_id": {"$in": [str(i) for i in old]}})
    ]:
        doc["occurred_at"] -= timedelta(days=11)
        await in_process.collection.replace_one({"_id": doc["_id"]}, doc)

    assert await expire_events(fresh_sessionmaker, in_process) == 2
    assert await stored_ids(in_process) == {str(i) for i in recent}
    assert {row.id for row in await outbox_rows(fresh_sessionmaker)} == set(recent)
    restarted = in_process_event_store(retention_days=10)
    await rebuild_in_process_store(fresh_sessionmaker, restarted)
    assert await stored_ids(restarted) == {str(i) for i in recent}

    # With MongoDB the outbox forgets them at the same age (MongoDB's TTL index does the rest).
    durable = durable_stand_in_store(retention_days=10)
    later = await record_committed(fresh_sessionmaker, [uuid.uuid4()])
    await deliver_pending(fresh_sessionmaker, durable)
    await backdate(fresh_sessionmaker, later, days=11)
    assert await expire_events(fresh_sessionmaker, durable) == 1
    assert {row.id for row in await outbox_rows(fresh_sessionmaker)} == set(recent)


async def test_replay_restores_every_event_postgresql_holds_and_then_lets_the_outbox_prune(
    fresh_sessionmaker: Sessionmaker,
) -> None:
    """An embedded install moving to MongoDB: everything the outbox kept is replayed, and only
    then do the rows become prunable."""
    ids = await record_committed(fresh_sessionmaker, [uuid.uuid4() for _ in range(4)])
    await deliver_pending(fresh_sessionmaker, in_process_event_store())
    await backdate(fresh_sessionmaker, ids[:3], days=60)
    mongodb = durable_stand_in_store()
    relay = Relay(fresh_sessionmaker, mongodb, make_settings(outbox_retention_days=30))

    await relay.tick()  # the new MongoDB relay starts: it must not prune what it never held
    assert len(await outbox_rows(fresh_sessionmaker)) == 4

    outcome = await replay(fresh_sessionmaker, mongodb)
    assert (outcome.events, outcome.inserted) == (4, 4)
    assert await stored_ids(mongodb) == {str(i) for i in ids}
    assert await prune_delivered(fresh_sessionmaker, 30) == 3
    assert await stored_ids(mongodb) == {str(i) for i in ids}
