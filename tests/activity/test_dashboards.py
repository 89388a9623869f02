"""Dashboard endpoints against hand-built events with known answers, bucket edges included."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.activity import service
from tests.activity.conftest import at, event, movement
from tests.conftest import ClientAs
from tests.factories.catalog import make_product, make_warehouse
from tests.purchasing import test_purchase_orders as purchase_orders
from tests.sales import test_sales_orders as sales_orders

WAREHOUSE_A = uuid.UUID("00000000-0000-0000-0000-00000000000a")
WAREHOUSE_B = uuid.UUID("00000000-0000-0000-0000-00000000000b")


async def test_activity_counts_events_per_utc_hour_and_type(
    client_as: ClientAs, events: Any
) -> None:
    await events.insert_many(
        [
            event("product.updated", "2026-03-01T08:59:59.999"),  # before `from`
            event("product.updated", "2026-03-01T09:00:00"),  # first instant of 09:00
            event("product.updated", "2026-03-01T09:59:59.999"),  # last instant of 09:00
            event("product.updated", "2026-03-01T10:00:00"),
            event("stock.movement_posted", "2026-03-01T10:30:00+02:00"),  # 08:30 UTC: outside
            event("stock.movement_posted", "2026-03-01T10:59:59.999"),
            event("product.updated", "2026-03-01T11:00:00"),  # `to` is exclusive
        ]
    )
    c = await client_as("analyst")

    response = await c.get(
        "/api/v1/dashboard/activity",
        params={"from": "2026-03-01T09:00:00Z", "to": "2026-03-01T11:00:00Z", "bucket": "hour"},
    )

    assert response.status_code == 200, response.text
    assert [(at(r["bucket_start"]), r["type"], r["count"]) for r in response.json()] == [
        (at("2026-03-01T09:00:00"), "product.updated", 2),
        (at("2026-03-01T10:00:00"), "product.updated", 1),
        (at("2026-03-01T10:00:00"), "stock.movement_posted", 1),
    ]


async def test_activity_day_buckets_split_at_utc_midnight(client_as: ClientAs, events: Any) -> None:
    await events.insert_many(
        [
            event("auth.login_succeeded", "2026-02-28T23:59:59.999"),
            event("auth.login_succeeded", "2026-03-01T00:00:00"),
            event("auth.login_succeeded", "2026-03-01T23:59:59.999"),
            event("auth.login_succeeded", "2026-03-02T01:00:00+02:00"),  # 2026-03-01T23:00Z
        ]
    )
    c = await client_as("analyst")

    response = await c.get(
        "/api/v1/dashboard/activity",
        params={"from": "2026-02-27T00:00:00Z", "to": "2026-03-03T00:00:00Z", "bucket": "day"},
    )

    assert response.status_code == 200
    assert [(at(r["bucket_start"]), r["count"]) for r in response.json()] == [
        (at("2026-02-28T00:00:00"), 1),
        (at("2026-03-01T00:00:00"), 3),
    ]
    assert response.json()[0]["bucket_start"].endswith(("Z", "+00:00"))


async def test_activity_refuses_an_empty_or_too_long_range(
    client_as: ClientAs, events: Any
) -> None:
    c = await client_as("analyst")
    empty = await c.get(
        "/api/v1/dashboard/activity",
        params={"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
    )
    too_long = await c.get(
        "/api/v1/dashboard/activity",
        params={"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "bucket": "hour"},
    )
    bad_bucket = await c.get("/api/v1/dashboard/activity", params={"bucket": "week"})
    assert (empty.status_code, too_long.status_code, bad_bucket.status_code) == (422, 422, 422)


async def test_stock_flow_sums_units_in_and_out_per_warehouse_and_utc_day(
    client_as: ClientAs, events: Any
) -> None:
    await events.insert_many(
        [
            movement("2026-03-01T10:00:00", WAREHOUSE_A, 10, "receipt"),
            movement("2026-03-01T12:00:00", WAREHOUSE_A, 5, "return"),
            movement("2026-03-01T23:59:59.999", WAREHOUSE_A, -3, "sale"),
            movement("2026-03-02T00:00:00", WAREHOUSE_A, -2, "transfer_out"),
            movement("2026-03-02T00:00:00.001", WAREHOUSE_B, 2, "transfer_in"),
            movement("2026-03-02T09:00:00", WAREHOUSE_B, -4, "adjustment"),
            movement("2026-03-03T00:00:00", WAREHOUSE_B, 99, "receipt"),  # `to` is exclusive
            movement("2026-02-28T23:59:59.999", WAREHOUSE_A, 99, "receipt"),  # before `from`
            event("stock.transfer_created", "2026-03-01T11:00:00", data={"quantity": 2}),
            event("product.updated", "2026-03-01T11:00:00", data={"signed_quantity": 50}),
        ]
    )
    c = await client_as("analyst")
    params = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-03T00:00:00Z", "bucket": "day"}

    everything = await c.get("/api/v1/dashboard/stock-flow", params=params)
    only_b = await c.get(
        "/api/v1/dashboard/stock-flow", params={**params, "warehouse_id": str(WAREHOUSE_B)}
    )

    assert everything.status_code == 200, everything.text
    rows = [
        (at(r["bucket_start"]), r["warehouse_id"], r["units_in"], r["units_out"])
        for r in everything.json()
    ]
    assert rows == [
        (at("2026-03-01T00:00:00"), str(WAREHOUSE_A), 15, 3),
        (at("2026-03-02T00:00:00"), str(WAREHOUSE_A), 0, 2),
        (at("2026-03-02T00:00:00"), str(WAREHOUSE_B), 2, 4),
    ]
    assert [(r["warehouse_id"], r["units_in"], r["units_out"]) for r in only_b.json()] == [
        (str(WAREHOUSE_B), 2, 4)
    ]


async def test_top_actors_ranks_by_events_with_the_latest_email(
    client_as: ClientAs, events: Any
) -> None:
    alice = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
    bob = uuid.UUID("00000000-0000-0000-0000-0000000000b0")
    carol = uuid.UUID("00000000-0000-0000-0000-0000000000c0")
    await events.insert_many(
        [
            event(occurred_at="2026-03-01T10:00:00", actor=(alice, "alice@old.example")),
            event(occurred_at="2026-03-01T12:00:00", actor=(alice, "alice@new.example")),
            event(occurred_at="2026-03-01T11:00:00", actor=(alice, "alice@old.example")),
            *(event(occurred_at="2026-03-01T10:00:00", actor=(bob, "bob@x.io")) for _ in range(3)),
            event(occurred_at="2026-03-01T10:00:00", actor=(carol, "carol@x.io")),
            event(occurred_at="2026-02-01T10:00:00", actor=(carol, "carol@x.io")),  # out of range
            *(event("auth.login_failed", "2026-03-01T10:00:00") for _ in range(9)),  # no actor
        ]
    )
    c = await client_as("analyst")
    params = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"}

    top = await c.get("/api/v1/dashboard/top-actors", params={**params, "limit": 2})
    everyone = await c.get("/api/v1/dashboard/top-actors", params=params)

    assert top.status_code == 200, top.text
    assert top.json() == [
        {"actor_id": str(alice), "email": "alice@new.example", "events": 3},
        {"actor_id": str(bob), "email": "bob@x.io", "events": 3},
    ]
    assert [r["actor_id"] for r in everyone.json()] == [str(alice), str(bob), str(carol)]
    assert (await c.get("/api/v1/dashboard/top-actors", params={"limit": 0})).status_code == 422


async def test_summary_counts_today_in_utc_and_rolling_windows(
    events: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    now = at("2026-03-01T12:00:00")
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await events.insert_many(
        [
            event("product.updated", "2026-03-01T00:00:00", actor=(a, "a@x.io")),
            movement("2026-03-01T09:00:00", WAREHOUSE_A, 3, actor=(b, "b@x.io")),
            movement("2026-02-28T23:59:59.999", WAREHOUSE_A, 3, actor=(b, "b@x.io")),
            event("auth.login_failed", now - timedelta(hours=23, minutes=59)),  # yesterday, <24h
            event("auth.login_failed", now - timedelta(hours=24, milliseconds=1)),
            event("product.updated", now - timedelta(days=6, hours=23), actor=(b, "b@x.io")),
            event("product.updated", now - timedelta(days=7, milliseconds=1), actor=(c, "c@x.io")),
        ]
    )

    async with sessionmaker() as reader:
        before = await service.summary(events, reader, now=now)
    await make_product(session, reorder_point=5)  # nothing on hand: low
    async with sessionmaker() as reader:
        summary = await service.summary(events, reader, now=now)

    assert summary.events_today == 2
    assert summary.movements_today == 1
    assert summary.failed_logins_24h == 1
    assert summary.active_users_7d == 2
    assert summary.low_stock_products == before.low_stock_products + 1
    assert summary.open_transfers == before.open_transfers == 0


async def test_summary_route_answers_with_every_figure(client_as: ClientAs, events: Any) -> None:
    c = await client_as("analyst")
    response = await c.get("/api/v1/dashboard/summary")
    assert response.status_code == 200, response.text
    assert set(response.json()) == {
        "events_today",
        "active_users_7d",
        "movements_today",
        "failed_logins_24h",
        "low_stock_products",
        "open_transfers",
        "open_purchase_orders",
        "open_sales_orders",
    }


async def test_summary_counts_open_purchase_and_sales_orders(
    client_as: ClientAs, events: Any, session: AsyncSession
) -> None:
    """Open means goods still to come or to go: drafts and finished orders do not count."""
    analyst = await client_as("analyst")
    manager = await client_as("manager")
    before = (await analyst.get("/api/v1/dashboard/summary")).json()
    buying = await purchase_orders.World(session).build()
    selling = await sales_orders.World(session).build()

    await purchase_orders.create(manager, buying)  # draft
    await purchase_orders.submitted(manager, buying)
    cancelled = await purchase_orders.submitted(manager, buying)
    await manager.post(f"{purchase_orders.URL}/{cancelled['id']}/cancel")
    await sales_orders.create(manager, selling)  # draft
    await sales_orders.confirmed(manager, selling, 1, 1)
    partly = await sales_orders.confirmed(manager, selling, 2, 1)
    await manager.post(
        f"{sales_orders.URL}/{partly['id']}/ship", json=sales_orders.shipment(partly, 1)
    )
    done = await sales_orders.confirmed(manager, selling, 1, 0)
    await manager.post(f"{sales_orders.URL}/{done['id']}/ship", json=sales_orders.shipment(done, 1))
    after = (await analyst.get("/api/v1/dashboard/summary")).json()

    assert after["open_purchase_orders"] == before["open_purchase_orders"] + 1
    assert after["open_sales_orders"] == before["open_sales_orders"] + 2


async def test_stock_flow_names_each_warehouse_by_its_code(
    client_as: ClientAs, events: Any, session: AsyncSession
) -> None:
    """Warehouses created the same day share the start of their UUIDv7 ids; the chart needs
    their codes: from the event when it carries one, else from the catalog."""
    north = await make_warehouse(session, code="NORTH")
    south = await make_warehouse(session, code="SOUTH")
    gone = uuid.UUID("00000000-0000-0000-0000-0000000000ff")  # no such warehouse
    renamed = movement("2026-03-01T10:00:00", south.id, 4)
    renamed["data"]["warehouse_code"] = "SOUTH-OLD"
    await events.insert_many(
        [
            movement("2026-03-01T09:00:00", north.id, 5),
            renamed,
            movement("2026-03-01T11:00:00", gone, -1),
        ]
    )
    c = await client_as("analyst")

    response = await c.get(
        "/api/v1/dashboard/stock-flow",
        params={"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"},
    )

    assert response.status_code == 200, response.text
    codes = {r["warehouse_id"]: r["warehouse_code"] for r in response.json()}
    assert codes == {str(north.id): "NORTH", str(south.id): "SOUTH-OLD", str(gone): None}
