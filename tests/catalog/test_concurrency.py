"""Races on real commits (a database of the test's own): the database has the last word, and
a lost race is a clean 409 or 412, never a 500 or a duplicate."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from stockroom.db.engine import create_engine, create_sessionmaker
from stockroom.main import create_app
from tests.conftest import http_client, make_settings
from tests.factories.auth import bearer_headers, make_user


async def manager_headers(url: str, settings: Any) -> dict[str, str]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            user = await make_user(session, roles=["manager"])
            headers = await bearer_headers(session, user.id, settings)
    finally:
        await engine.dispose()
    return headers


async def test_concurrent_creates_of_one_sku_give_one_product(fresh_database: str) -> None:
    settings = make_settings(fresh_database)
    headers = await manager_headers(fresh_database, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        clients = [http_client(app, headers) for _ in range(6)]
        try:
            responses = await asyncio.gather(
                *(
                    c.post(
                        "/api/v1/products",
                        json={
                            "sku": "RACE-a" if i % 2 else "RACE-A",
                            "name": "x",
                            "sale_price": "1.00",
                        },
                    )
                    for i, c in enumerate(clients)
                )
            )
            statuses = Counter(r.status_code for r in responses)
            assert statuses == {201: 1, 409: 5}, [r.text for r in responses]
            listed = await clients[0].get("/api/v1/products", params={"q": "race-"})
            assert listed.json()["total"] == 1
        finally:
            for c in clients:
                await c.aclose()


async def test_concurrent_patches_with_one_etag_let_exactly_one_win(fresh_database: str) -> None:
    settings = make_settings(fresh_database)
    headers = await manager_headers(fresh_database, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        clients = [http_client(app, headers) for _ in range(5)]
        try:
            created = await clients[0].post(
                "/api/v1/products", json={"sku": "ETAG-1", "name": "start", "sale_price": "1.00"}
            )
            product_id, etag = created.json()["id"], created.headers["ETag"]
            responses = await asyncio.gather(
                *(
                    c.patch(
                        f"/api/v1/products/{product_id}",
                        json={"name": f"writer {i}"},
                        headers={"If-Match": etag},
                    )
                    for i, c in enumerate(clients)
                )
            )
            statuses = Counter(r.status_code for r in responses)
            assert statuses == {200: 1, 412: 4}, [r.text for r in responses]
            winner = next(r for r in responses if r.status_code == 200).json()["name"]
            current = await clients[0].get(f"/api/v1/products/{product_id}")
            assert current.json()["name"] == winner
            assert current.headers["ETag"] == '"2"'
        finally:
            for c in clients:
                await c.aclose()
