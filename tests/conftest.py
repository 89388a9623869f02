"""Fixtures every test module uses.

- One real PostgreSQL for the session: embedded (a throwaway data folder), or `TEST_DATABASE_URL`.
- A template database migrated once with Alembic; a test database cloned from it.
- `session` / `client`: per-test isolation by an outer transaction that is rolled back, with the
  app's sessions joining it through savepoints (`join_transaction_mode="create_savepoint"`).
- `fresh_database`: a database of its own cloned from the template, for tests that need real
  commits from many connections (concurrency, relay, crash recovery).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from starlette.datastructures import State

from stockroom.db import migrate
from stockroom.db.embedded import async_url, start_embedded_postgres
from stockroom.db.engine import create_engine, normalize_url
from stockroom.main import create_app
from stockroom.settings import Settings

pytest_plugins = ["tests.support.watchdog"]

TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-for-hs256-0123456789"


@dataclass(frozen=True)
class PostgresCluster:
    """Where test databases are created: a server URL whose database we may create others from."""

    admin_url: str  # SQLAlchemy asyncpg URL of a maintenance database

    def url_for(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(False)

    def asyncpg_dsn(self, database: str | None = None) -> tuple[str, dict[str, Any]]:
        url = make_url(self.url_for(database) if database else self.admin_url)
        kwargs: dict[str, Any] = {
            "user": url.username,
            "password": url.password,
            "database": url.database,
            "host": url.query.get("host") or url.host,
            "port": url.port,
        }
        return "", {k: v for k, v in kwargs.items() if v is not None}

    async def execute(self, sql: str) -> None:
        _, kwargs = self.asyncpg_dsn()
        connection = await asyncpg.connect(**kwargs)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    def execute_sync(self, sql: str) -> None:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self.execute(sql)).result()


def _run_in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    # Alembic's env.py calls asyncio.run(); keep it off the test session's event loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield PostgresCluster(admin_url=normalize_url(external))
        return
    data_dir = Path(tempfile.mkdtemp(prefix="stockroom-test-"))
    server = start_embedded_postgres(data_dir)
    try:
        yield PostgresCluster(admin_url=async_url(server, "postgres"))
    finally:
        server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def template_database(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A database migrated to head once; every test database is cloned from it."""
    name = f"stockroom_template_{uuid.uuid4().hex[:8]}"
    postgres_cluster.execute_sync(f'CREATE DATABASE "{name}"')
    _run_in_thread(migrate.upgrade, postgres_cluster.url_for(name))
    yield name
    postgres_cluster.execute_sync(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class DatabaseFactory:
    """Creates databases cloned from the migrated template and drops them at the end."""

    def __init__(self, cluster: PostgresCluster, template: str) -> None:
        self.cluster = cluster
        self.template = template
        self.created: list[str] = []

    async def create(self) -> str:
        name = f"stockroom_test_{uuid.uuid4().hex[:12]}"
        await self.cluster.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return self.cluster.url_for(name)

    async def drop_all(self) -> None:
        for name in self.created:
            await self.cluster.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


@pytest.fixture(scope="session")
async def database_factory(
    postgres_cluster: PostgresCluster, template_database: str
) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(postgres_cluster, template_database)
    yield factory
    await factory.drop_all()


@pytest.fixture(scope="session")
async def database_url(database_factory: DatabaseFactory) -> str:
    """The shared test database, for savepoint-isolated tests."""
    return await database_factory.create()


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2, max_overflow=2)
    yield engine
    await engine.dispose()


def make_settings(database_url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "secret_key": TEST_SECRET_KEY,
        "database_url": database_url,
        "mongodb_url": None,
        "environment": "local",
        "relay_enabled": False,
        "webhook_dispatcher_enabled": False,
        "log_level": "WARNING",
        "first_admin_email": None,
        "first_admin_password": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One connection holding an outer transaction that is rolled back after the test."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )


@pytest.fixture
async def session(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


class _SessionmakerSlot:
    """Stands in for the sessionmaker of an app shared by many tests: each test puts its own
    (savepoint-isolated) sessionmaker in the slot."""

    def __init__(self) -> None:
        self.current: async_sessionmaker[AsyncSession] | None = None

    def __call__(self) -> AsyncSession:
        assert self.current is not None, "the shared app is used outside its test"
        return self.current()


# Building the app's 67 routes costs FastAPI about 0.25 s, more than most tests take: tests with
# equal settings share one app (per worker). Each test still gets an empty `app.state`, no
# dependency overrides, its own sessionmaker and its own run of the lifespan.
_shared_apps: list[tuple[Settings, Any, _SessionmakerSlot]] = []


def _shared_app(settings: Settings) -> tuple[Any, _SessionmakerSlot]:
    for known, application, slot in _shared_apps:
        if known == settings:
            return application, slot
    slot = _SessionmakerSlot()
    application = create_app(settings, sessionmaker=cast(Any, slot))
    _shared_apps.append((settings.model_copy(deep=True), application, slot))
    return application, slot


@pytest.fixture
async def app(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Any]:
    """The app, shared with other tests: use `private_app` to add routes to it."""
    application, slot = _shared_app(settings)
    application.state = State()
    application.state.settings = settings
    application.dependency_overrides.clear()
    routes = list(application.router.routes)
    slot.current = sessionmaker
    try:
        async with application.router.lifespan_context(application):
            yield application
    finally:
        slot.current = None
    assert application.router.routes == routes, "a test changed the shared app: use private_app"


@pytest.fixture
async def private_app(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Any]:
    """An app of the test's own (built in about 0.25 s), for tests that add routes to it."""
    application = create_app(settings, sessionmaker=sessionmaker)
    async with application.router.lifespan_context(application):
        yield application


def http_client(application: Any, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application, raise_app_exceptions=False),
        base_url="http://testserver",
        headers=headers,
    )


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app) as c:
        yield c


ClientAs = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def client_as(app: Any, session: AsyncSession, settings: Settings) -> AsyncIterator[ClientAs]:
    """`await client_as("staff")`: a client logged in as a new user holding the given roles."""
    from tests.factories.auth import bearer_headers, make_user

    clients: list[httpx.AsyncClient] = []

    async def build(*roles: str, email: str | None = None) -> httpx.AsyncClient:
        user = await make_user(session, roles=list(roles), email=email)
        c = http_client(app, await bearer_headers(session, user.id, settings))
        c.user = user  # type: ignore[attr-defined]
        clients.append(c)
        return c

    yield build
    for c in clients:
        await c.aclose()


@pytest.fixture
async def fresh_database(database_factory: DatabaseFactory) -> str:
    """A database of the test's own, cloned from the migrated template: real commits allowed."""
    return await database_factory.create()
