"""`GET /api/v1/activity`: filters, newest first, cursor pagination, cost redaction."""

from __future__ import annotations

import base64
import random
import uuid
from datetime import timedelta
from typing import Any

import pytest

from tests.activity.conftest import at, event
from tests.conftest import ClientAs


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


async def all_pages(client: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = await client.get(
            "/api/v1/activity", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def test_events_are_listed_newest_first_in_the_api_shape(
    client_as: ClientAs, events: Any
) -> None:
    actor = uuid.uuid4()
    older = event("product.created", "2026-03-01T09:00:00", actor=(actor, "a@example.com"))
    newer = event(
        "product.updated",
        "2026-03-01T10:00:00",
        entity=("product", uuid.uuid4()),
        changes={"name": {"old": "Bolt", "new": "Hex bolt"}},
    )
    await events.insert_many([older, newer])
    analyst = await client_as("analyst")

    response = await analyst.get("/api/v1/activity")

    assert response.status_code == 200
    body = response.json()
    assert ids(body) == [newer["_id"], older["_id"]]
    assert body["next_cursor"] is None
    first = body["items"][0]
    assert first["type"] == "product.updated"
    assert first["occurred_at"] in ("2026-03-01T10:00:00Z", "2026-03-01T10:00:00+00:00")
    assert first["changes"] == {"name": {"old": "Bolt", "new": "Hex bolt"}}
    assert first["entity"]["type"] == "product"
    assert body["items"][1]["actor"] == {"id": str(actor), "email": "a@example.com"}


async def test_filters_select_by_type_prefix_actor_entity_and_time(
    client_as: ClientAs, events: Any
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    product = uuid.uuid4()
    docs = {
        "receipt": event("stock.movement_posted", "2026-03-01T08:00:00", actor=(alice, "a@x.io")),
        "transfer": event("stock.transfer_created", "2026-03-01T09:00:00", actor=(bob, "b@x.io")),
        "created": event(
            "product.created",
            "2026-03-01T10:00:00",
            actor=(alice, "a@x.io"),
            entity=("product", product),
        ),
        "updated": event(
            "product.updated",
            "2026-03-01T11:00:00",
            actor=(bob, "b@x.io"),
            entity=("product", product),
        ),
        "other": event("product.updated", "2026-03-01T12:00:00", entity=("product", uuid.uuid4())),
        "login": event("auth.login_failed", "2026-03-01T13:00:00"),
        "stockish": event("stockroom.noise", "2026-03-01T14:00:00"),
    }
    await events.insert_many(list(docs.values()))
    c = await client_as("analyst")

    async def select(**params: Any) -> list[str]:
        response = await c.get("/api/v1/activity", params=params)
        assert response.status_code == 200, response.text
        names = {doc["_id"]: name for name, doc in docs.items()}
        return [names[i] for i in ids(response.json())]

    assert await select(type="product.updated") == ["other", "updated"]
    assert await select(type="stock.*") == ["transfer", "receipt"]  # not `stockroom.noise`
    assert await select(type="*") == await select()
    assert await select(actor_id=str(alice)) == ["created", "receipt"]
    assert await select(entity_type="product", entity_id=str(product)) == ["updated", "created"]
    assert await select(entity_type="product") == ["other", "updated", "created"]
    assert await select(entity_id=str(product)) == ["updated", "created"]
    assert await select(**{"from": "2026-03-01T09:00:00Z", "to": "2026-03-01T11:00:00Z"}) == [
        "created",
        "transfer",
    ]  # from inclusive, to exclusive
    assert await select(type="product.*", actor_id=str(bob)) == ["updated"]
    assert await select(type="nothing.*") == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"type": "bad type!"},
        {"actor_id": "not-a-uuid"},
        {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        {"from": "yesterday"},
    ],
)
async def test_invalid_query_parameters_are_422(
    client_as: ClientAs, events: Any, params: dict[str, Any]
) -> None:
    c = await client_as("analyst")
    response = await c.get("/api/v1/activity", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_pages_return_every_event_once_newest_first_despite_concurrent_inserts(
    client_as: ClientAs, events: Any
) -> None:
    rng = random.Random(7)
    base = at("2026-03-01T00:00:00")
    # Many events share a millisecond, so the id tie-break matters at page boundaries.
    originals = [
        event(
            rng.choice(["product.updated", "stock.movement_posted", "auth.login_succeeded"]),
            base + timedelta(milliseconds=rng.randrange(0, 40)),
        )
        for _ in range(230)
    ]
    await events.insert_many(originals)
    c = await client_as("analyst")

    seen: list[dict[str, Any]] = []
    cursor = None
    inserted_meanwhile: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": 17}
        if cursor:
            params["cursor"] = cursor
        response = await c.get("/api/v1/activity", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # Meanwhile the relay delivers more: new events, and late ones inside the range already
        # paged through (at-least-once delivery is not in time order).
        fresh = [
            event("product.updated", base + timedelta(minutes=5, milliseconds=len(seen))),
            event("product.updated", base + timedelta(milliseconds=rng.randrange(0, 40))),
        ]
        inserted_meanwhile.extend(fresh)
        await events.insert_many(fresh)

    seen_ids = [item["id"] for item in seen]
    assert len(seen_ids) == len(set(seen_ids)), "an event was returned twice"
    assert {doc["_id"] for doc in originals} <= set(seen_ids), "an event was skipped"
    assert set(seen_ids) <= {doc["_id"] for doc in originals + inserted_meanwhile}
    keys = [(at(item["occurred_at"]), item["id"]) for item in seen]
    assert keys == sorted(keys, reverse=True), "not newest first"


async def test_pagination_honours_filters_across_pages(client_as: ClientAs, events: Any) -> None:
    actor = uuid.uuid4()
    base = at("2026-03-01T00:00:00")
    mine = [
        event("stock.movement_posted", base + timedelta(seconds=i // 3), actor=(actor, "m@x.io"))
        for i in range(40)
    ]
    noise = [event("stock.movement_posted", base + timedelta(seconds=i)) for i in range(40)]
    await events.insert_many(mine + noise)
    c = await client_as("analyst")

    items = await all_pages(c, {"limit": 7, "actor_id": str(actor), "type": "stock.*"})

    assert sorted(item["id"] for item in items) == sorted(doc["_id"] for doc in mine)


async def test_a_tampered_foreign_or_garbage_cursor_is_422(
    client_as: ClientAs, events: Any
) -> None:
    await events.insert_many(
        [event("product.updated", f"2026-03-01T10:00:{s:02d}") for s in range(5)]
    )
    c = await client_as("analyst")
    first = (await c.get("/api/v1/activity", params={"limit": 2})).json()
    cursor = first["next_cursor"]
    assert cursor
    payload, mac = cursor.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[raw.index(b'"t":') + 5] ^= 1  # move the position by a few milliseconds
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode() + "." + mac

    for bad, params in [
        ("garbage", {}),
        (forged, {}),
        (cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"), {}),
        (cursor, {"type": "product.created"}),  # issued for other filters
    ]:
        response = await c.get("/api/v1/activity", params={"limit": 2, "cursor": bad, **params})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["code"] == "invalid_cursor"

    good = await c.get("/api/v1/activity", params={"limit": 2, "cursor": cursor})
    assert good.status_code == 200


async def test_cost_fields_are_hidden_from_readers_without_costs_read(
    client_as: ClientAs, events: Any, session: Any
) -> None:
    from stockroom.auth.models import Role, RolePermission

    role = Role(name=f"auditor-{uuid.uuid4().hex[:6]}", description="audit only")
    session.add(role)
    await session.flush()
    session.add(RolePermission(role_id=role.id, permission="audit:read"))
    await session.flush()
    await events.insert_one(
        event(
            "product.updated",
            changes={
                "cost_price": {"old": "1.00", "new": "2.00"},
                "name": {"old": "a", "new": "b"},
            },
            data={"sku": "X1", "margin": "3.00", "lines": [{"unit_cost": "1.50", "qty": 2}]},
        )
    )
    auditor = await client_as(role.name)
    analyst = await client_as("analyst")

    hidden = (await auditor.get("/api/v1/activity")).json()["items"][0]
    shown = (await analyst.get("/api/v1/activity")).json()["items"][0]

    assert hidden["changes"] == {"name": {"old": "a", "new": "b"}}
    assert hidden["data"] == {"sku": "X1", "lines": [{"qty": 2}]}
    assert shown["changes"]["cost_price"] == {"old": "1.00", "new": "2.00"}
    assert shown["data"]["margin"] == "3.00"
