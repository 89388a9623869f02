"""An app on a database of its own, with real commits: for concurrency tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.catalog.models import Product, Warehouse
from stockroom.main import create_app
from tests.conftest import http_client, make_settings
from tests.factories.auth import bearer_headers, make_user
from tests.factories.catalog import make_product, make_warehouse
from tests.factories.stock import make_stock


@dataclass
class LiveApp:
    app: FastAPI
    sessionmaker: async_sessionmaker[AsyncSession]

    async def client(self, *roles: str) -> httpx.AsyncClient:
        async with self.sessionmaker() as session, session.begin():
            user = await make_user(session, roles=list(roles))
            headers = await bearer_headers(session, user.id, self.app.state.settings)
        return http_client(self.app, headers)

    async def clients(self, count: int, *roles: str) -> list[httpx.AsyncClient]:
        """`count` clients of one user (like several browser tabs or API replicas' callers)."""
        async with self.sessionmaker() as session, session.begin():
            user = await make_user(session, roles=list(roles))
            headers = await bearer_headers(session, user.id, self.app.state.settings)
        return [http_client(self.app, headers) for _ in range(count)]

    async def product_in(
        self, *stock: int, **product_fields: Any
    ) -> tuple[Product, list[Warehouse]]:
        """A product and one warehouse per `stock` entry holding that many units."""
        async with self.sessionmaker() as session, session.begin():
            product = await make_product(session, **product_fields)
            warehouses = []
            for quantity in stock:
                warehouse = await make_warehouse(session)
                if quantity:
                    await make_stock(session, product, warehouse, quantity)
                warehouses.append(warehouse)
        return product, warehouses

    async def scalar(self, sql: str, **params: Any) -> Any:
        from sqlalchemy import text

        async with self.sessionmaker() as session, session.begin():
            return await session.scalar(text(sql), params)


@asynccontextmanager
async def live_app(database_url: str, **overrides: Any) -> AsyncIterator[LiveApp]:
    app = create_app(make_settings(database_url, **overrides))
    async with app.router.lifespan_context(app):
        yield LiveApp(app=app, sessionmaker=app.state.sessionmaker)
