from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from stockroom.db import migrate
from stockroom.db.engine import create_engine
from stockroom.db.models import Base
from tests.conftest import DatabaseFactory


def in_thread(fn: Any, *args: Any) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


async def table_names(url: str) -> set[str]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade_round_trip(database_factory: DatabaseFactory) -> None:
    url = await database_factory.create()
    assert await migrate.current_revision(url) == migrate.head_revision()
    in_thread(migrate.downgrade, url, "base")
    assert await table_names(url) <= {"alembic_version"}
    in_thread(migrate.upgrade, url)
    assert await migrate.current_revision(url) == migrate.head_revision()
    assert {"users", "roles", "products", "outbox_events"} <= await table_names(url)


async def test_models_and_migrations_agree(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)

    def diff(sync_connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            sync_connection, opts={"compare_type": True, "target_metadata": Base.metadata}
        )
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []


async def test_seeded_roles_hold_the_contract_permissions(database_url: str) -> None:
    from stockroom.auth.permissions import SEEDED_ROLES

    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT r.name, array_agg(rp.permission) FROM roles r "
                    "JOIN role_permissions rp ON rp.role_id = r.id GROUP BY r.name"
                )
            )
            seeded = {name: set(perms) for name, perms in rows}
    finally:
        await engine.dispose()
    assert seeded == {name: {str(p) for p in perms} for name, (_, perms) in SEEDED_ROLES.items()}


async def _role_permissions(url: str) -> dict[str, set[str]]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT r.name, array_remove(array_agg(rp.permission), NULL) FROM roles r "
                    "LEFT JOIN role_permissions rp ON rp.role_id = r.id GROUP BY r.name"
                )
            )
            return {name: set(perms) for name, perms in rows}
    finally:
        await engine.dispose()


async def test_order_permissions_go_to_seeded_roles_and_leave_custom_roles_alone(
    database_factory: DatabaseFactory,
) -> None:
    url = await database_factory.create()
    in_thread(migrate.downgrade, url, "0011-1")
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO roles (id, name, description, is_system) "
                    "VALUES (gen_random_uuid(), 'buyer', 'custom', false)"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO role_permissions (role_id, permission) "
                    "SELECT id, 'stock:read' FROM roles WHERE name = 'buyer'"
                )
            )
    finally:
        await engine.dispose()
    before = await _role_permissions(url)

    in_thread(migrate.upgrade, url, "0011")

    after = await _role_permissions(url)
    assert after["buyer"] == {"stock:read"}
    assert after["admin"] - before["admin"] == {
        "purchasing:read",
        "purchasing:write",
        "sales:read",
        "sales:write",
    }
    assert after["manager"] - before["manager"] == {
        "purchasing:read",
        "purchasing:write",
        "sales:read",
        "sales:write",
    }
    assert after["staff"] - before["staff"] == {"purchasing:read", "sales:read", "sales:write"}
    assert after["analyst"] - before["analyst"] == {"purchasing:read", "sales:read"}
