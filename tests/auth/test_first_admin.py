"""The first administrator: from settings, generated in the embedded default, or by the CLI."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from stockroom.auth.lifespan import EMBEDDED_ADMIN_EMAIL, ensure_first_admin
from stockroom.auth.models import User
from stockroom.cli import app as cli_app
from stockroom.db.engine import create_engine, create_sessionmaker
from stockroom.main import create_app
from stockroom.settings import get_settings
from tests.conftest import http_client, make_settings


async def login_status(client: httpx.AsyncClient, email: str, password: str) -> int:
    response = await client.post(
        "/api/v1/auth/login-json", json={"email": email, "password": password}
    )
    return response.status_code


async def test_first_admin_comes_from_settings_once(fresh_database: str) -> None:
    settings = make_settings(
        fresh_database, first_admin_email="Boss@Example.com", first_admin_password="boss pass 1"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), http_client(app) as client:
        assert await login_status(client, "boss@example.com", "boss pass 1") == 200
        pair = (
            await client.post(
                "/api/v1/auth/login-json",
                json={"email": "boss@example.com", "password": "boss pass 1"},
            )
        ).json()
        me = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        )
        assert me.json()["roles"] == ["admin"]

    # A restart with another password changes nothing: the user exists already.
    again = create_app(
        make_settings(
            fresh_database, first_admin_email="boss@example.com", first_admin_password="other 22"
        )
    )
    async with again.router.lifespan_context(again), http_client(again) as client:
        assert await login_status(client, "boss@example.com", "boss pass 1") == 200
        assert await login_status(client, "boss@example.com", "other 22") == 401


async def test_embedded_default_generates_a_password_and_prints_it_once(
    fresh_database: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    embedded = make_settings(None)
    assert embedded.uses_embedded_postgres
    engine = create_engine(fresh_database, pool_size=2, max_overflow=0)
    sessionmaker = create_sessionmaker(engine)
    try:
        await ensure_first_admin(sessionmaker, embedded)
        printed = capsys.readouterr().out
        assert EMBEDDED_ADMIN_EMAIL in printed
        password = printed.split("password:")[1].split()[0]
        assert len(password) >= 24

        await ensure_first_admin(sessionmaker, embedded)
        assert capsys.readouterr().out == ""  # shown once only
        async with sessionmaker() as session:
            stored = await session.scalar(
                select(User.password_hash).where(User.email == EMBEDDED_ADMIN_EMAIL)
            )
            admins = await session.scalar(select(func.count()).select_from(User))
        assert stored is not None
        assert stored.startswith("$argon2id$")
        assert password not in stored
        assert admins == 1
        assert password not in caplog.text
    finally:
        await engine.dispose()

    app = create_app(make_settings(fresh_database))
    async with app.router.lifespan_context(app), http_client(app) as client:
        assert await login_status(client, EMBEDDED_ADMIN_EMAIL, password) == 200


async def test_external_database_gets_no_generated_admin(
    fresh_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = create_engine(fresh_database, pool_size=1, max_overflow=0)
    try:
        await ensure_first_admin(create_sessionmaker(engine), make_settings(fresh_database))
        async with create_sessionmaker(engine)() as session:
            assert await session.scalar(select(func.count()).select_from(User)) == 0
    finally:
        await engine.dispose()
    assert capsys.readouterr().out == ""


def run_cli(database_url: str, args: list[str], input_: str | None = None) -> tuple[int, str]:
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli_app, args, input=input_, env={"DATABASE_URL": database_url, "ENVIRONMENT": "local"}
        )
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


async def test_create_admin_cli_prompts_for_a_hidden_confirmed_password(
    fresh_database: str,
) -> None:
    code, output = await asyncio.to_thread(
        run_cli,
        fresh_database,
        ["create-admin", "--email", "Ops@Example.com", "--full-name", "Ops"],
        "prompted pass 9\nprompted pass 9\n",
    )
    assert code == 0, output
    assert "Password:" in output
    assert "Repeat for confirmation:" in output
    assert "prompted pass 9" not in output  # hidden input is not echoed
    assert "administrator ops@example.com created" in output

    app = create_app(make_settings(fresh_database))
    async with app.router.lifespan_context(app), http_client(app) as client:
        assert await login_status(client, "ops@example.com", "prompted pass 9") == 200

    code, output = await asyncio.to_thread(
        run_cli,
        fresh_database,
        ["create-admin", "--email", "ops@example.com", "--password", "x" * 9],
    )
    assert code == 1
    assert "already exists" in output

    code, output = await asyncio.to_thread(
        run_cli,
        fresh_database,
        ["create-admin", "--email", "ops@example.com", "--password", "recovered 1", "--reset"],
    )
    assert code == 0, output
    async with app.router.lifespan_context(app), http_client(app) as client:
        assert await login_status(client, "ops@example.com", "recovered 1") == 200


async def test_create_admin_cli_refuses_a_short_password(fresh_database: str) -> None:
    code, output = await asyncio.to_thread(
        run_cli, fresh_database, ["create-admin", "--email", "a@example.com", "--password", "short"]
    )
    assert code == 2
    assert "8 to 128 characters" in output
