"""POST /auth/login and /auth/login-json: credentials, throttling, events."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.main import create_app
from tests.conftest import http_client, make_settings
from tests.factories.auth import (
    DEFAULT_PASSWORD,
    FakeClock,
    auth_headers,
    make_user,
    outbox_payloads,
)

LOGIN = "/api/v1/auth/login"
LOGIN_JSON = "/api/v1/auth/login-json"


async def login_json(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(LOGIN_JSON, json={"email": email, "password": password})


async def test_form_login_returns_a_working_token_pair(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, roles=["manager"], email="form@example.com")
    response = await client.post(
        LOGIN, data={"username": "Form@Example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    pair = response.json()
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 15 * 60
    assert pair["refresh_token"]
    assert pair["access_token"] != pair["refresh_token"]
    me = await client.get("/api/v1/users/me", headers=auth_headers(pair["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == "form@example.com"
    assert "users:read" in me.json()["permissions"]


async def test_json_login_works_and_records_a_success_event(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, email="json@example.com")
    response = await login_json(client, "json@example.com", DEFAULT_PASSWORD)
    assert response.status_code == 200
    [event] = await outbox_payloads(session, "auth.login_succeeded")
    assert event["actor"]["id"] == str(user.id)
    assert event["entity"] == {"type": "user", "id": str(user.id)}


async def test_wrong_password_and_unknown_email_give_the_same_401(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, email="known@example.com")
    wrong_password = await login_json(client, "known@example.com", "not the password")
    unknown_email = await login_json(client, "nobody@example.com", "not the password")
    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.headers["content-type"].startswith("application/problem+json")
    strip = ("request_id",)
    assert {k: v for k, v in wrong_password.json().items() if k not in strip} == {
        k: v for k, v in unknown_email.json().items() if k not in strip
    }
    assert wrong_password.json()["code"] == "invalid_credentials"


async def test_unknown_email_costs_about_as_much_as_a_wrong_password(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, email="timing@example.com")

    async def median(email: str) -> float:
        samples = []
        for _ in range(5):
            began = time.perf_counter()
            await login_json(client, email, "wrong password")
            samples.append(time.perf_counter() - began)
        return sorted(samples)[2]

    # Five attempts per account: the fifth locks it, but only after it has been verified.
    known = await median("timing@example.com")
    unknown = await median("nobody-timing@example.com")
    # Both verify an Argon2id hash: neither is an order of magnitude cheaper than the other.
    assert unknown > known / 3
    assert known > unknown / 3


async def test_deactivated_user_cannot_log_in(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, email="gone@example.com", is_active=False)
    response = await login_json(client, "gone@example.com", DEFAULT_PASSWORD)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


async def test_login_validation_errors_are_422(client: httpx.AsyncClient) -> None:
    assert (await client.post(LOGIN_JSON, json={"email": "a@b.c"})).status_code == 422
    assert (await client.post(LOGIN, data={"username": "a@b.c"})).status_code == 422


async def test_failed_logins_are_recorded_without_the_password(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, email="audited@example.com")
    await login_json(client, "audited@example.com", "guess-number-one")
    await login_json(client, "nobody@example.com", "guess-number-two")
    events = await outbox_payloads(session, "auth.login_failed")
    assert [e["data"]["reason"] for e in events] == ["wrong_password", "unknown_email"]
    assert events[0]["entity"] == {"type": "user", "id": str(user.id)}
    assert events[1]["entity"] is None
    assert "guess-number" not in str(events)


async def test_five_failures_lock_the_account_until_the_window_passes(
    app: Any, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    clock = FakeClock()
    app.state.clock = clock
    await make_user(session, email="locked@example.com")
    for attempt in range(5):
        response = await login_json(client, "locked@example.com", f"wrong-{attempt}")
        assert response.status_code == 401, attempt
        clock.advance(seconds=30)

    # The sixth attempt, with the correct password, is refused while the lock holds.
    locked = await login_json(client, "Locked@example.com", DEFAULT_PASSWORD)
    assert locked.status_code == 429
    assert locked.json()["code"] == "account_locked"
    assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60
    [lockout] = await outbox_payloads(session, "auth.locked_out")
    assert lockout["data"]["email"] == "locked@example.com"

    clock.advance(minutes=14)
    still = await login_json(client, "locked@example.com", DEFAULT_PASSWORD)
    assert still.status_code == 429
    assert int(still.headers["Retry-After"]) <= 60

    clock.advance(minutes=1, seconds=1)
    assert (await login_json(client, "locked@example.com", DEFAULT_PASSWORD)).status_code == 200


async def test_failures_outside_the_window_do_not_add_up(
    app: Any, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    clock = FakeClock()
    app.state.clock = clock
    await make_user(session, email="slow@example.com")
    for _ in range(4):
        assert (await login_json(client, "slow@example.com", "wrong")).status_code == 401
    clock.advance(minutes=16)
    for _ in range(4):
        assert (await login_json(client, "slow@example.com", "wrong")).status_code == 401
    assert (await login_json(client, "slow@example.com", DEFAULT_PASSWORD)).status_code == 200


async def test_a_successful_login_resets_the_failure_count(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, email="reset@example.com")
    for _ in range(4):
        await login_json(client, "reset@example.com", "wrong")
    assert (await login_json(client, "reset@example.com", DEFAULT_PASSWORD)).status_code == 200
    for _ in range(4):
        assert (await login_json(client, "reset@example.com", "wrong")).status_code == 401
    assert (await login_json(client, "reset@example.com", DEFAULT_PASSWORD)).status_code == 200


async def test_unknown_emails_lock_like_known_ones(client: httpx.AsyncClient) -> None:
    for _ in range(5):
        assert (await login_json(client, "ghost@example.com", "wrong")).status_code == 401
    assert (await login_json(client, "ghost@example.com", "wrong")).status_code == 429


async def test_lockout_is_committed_and_shared_by_every_replica(fresh_database: str) -> None:
    """Failures are counted in PostgreSQL: two app instances see the same lock, and the failure
    records survive the 401 responses (they are committed, not rolled back with the request)."""
    from sqlalchemy import text

    from stockroom.db.engine import create_engine

    first = create_app(make_settings(fresh_database))
    second = create_app(make_settings(fresh_database))
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        async with http_client(first) as a, http_client(second) as b:
            registered = await a.post(
                "/api/v1/auth/register",
                json={"email": "shared@example.com", "password": "pass-word-1", "full_name": "S"},
            )
            assert registered.status_code == 201
            for i in range(5):
                client = a if i % 2 == 0 else b
                assert (await login_json(client, "shared@example.com", "wrong")).status_code == 401
            assert (await login_json(b, "shared@example.com", "pass-word-1")).status_code == 429
            assert (await login_json(a, "shared@example.com", "pass-word-1")).status_code == 429

    engine = create_engine(fresh_database, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            failed = await connection.scalar(
                text("SELECT count(*) FROM outbox_events WHERE type = 'auth.login_failed'")
            )
            locked = await connection.scalar(
                text("SELECT count(*) FROM outbox_events WHERE type = 'auth.locked_out'")
            )
    finally:
        await engine.dispose()
    assert failed == 7  # five wrong passwords, two attempts while locked
    assert locked == 1


async def test_stale_failure_counters_are_pruned(
    app: Any, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    from sqlalchemy import select

    from stockroom.auth.models import LoginThrottle

    clock = FakeClock()
    app.state.clock = clock
    for i in range(3):
        await login_json(client, f"spray-{i}@example.com", "wrong")
    clock.advance(minutes=16)
    await login_json(client, "spray-last@example.com", "wrong")
    remaining = set(await session.scalars(select(LoginThrottle.email)))
    assert remaining == {"spray-last@example.com"}


async def test_a_hash_with_old_parameters_is_upgraded_on_login(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    from pwdlib.hashers.argon2 import Argon2Hasher
    from sqlalchemy import select

    from stockroom.auth.models import User

    weak = Argon2Hasher(memory_cost=8192, time_cost=1, parallelism=1).hash(DEFAULT_PASSWORD)
    user = await make_user(session, email="legacy@example.com")
    user.password_hash = weak
    await session.flush()
    assert (await login_json(client, "legacy@example.com", DEFAULT_PASSWORD)).status_code == 200
    stored = await session.scalar(
        select(User.password_hash)
        .where(User.email == "legacy@example.com")
        .execution_options(populate_existing=True)
    )
    assert stored != weak
    assert stored is not None
    assert "m=19456,t=2,p=1" in stored
    assert (await login_json(client, "legacy@example.com", DEFAULT_PASSWORD)).status_code == 200


async def test_a_concurrent_burst_of_failures_locks_once(fresh_database: str) -> None:
    import asyncio

    from sqlalchemy import text

    from stockroom.db.engine import create_engine

    app = create_app(make_settings(fresh_database))
    async with app.router.lifespan_context(app):
        clients = [http_client(app) for _ in range(10)]
        try:
            await clients[0].post(
                "/api/v1/auth/register",
                json={"email": "burst@example.com", "password": "pass-word-1", "full_name": "B"},
            )
            results = await asyncio.gather(
                *(login_json(c, "burst@example.com", f"guess-{i}") for i, c in enumerate(clients))
            )
            assert {r.status_code for r in results} <= {401, 429}
            after = await login_json(clients[0], "burst@example.com", "pass-word-1")
            assert after.status_code == 429
        finally:
            for c in clients:
                await c.aclose()

    engine = create_engine(fresh_database, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            lockouts = await connection.scalar(
                text("SELECT count(*) FROM outbox_events WHERE type = 'auth.locked_out'")
            )
    finally:
        await engine.dispose()
    assert lockouts == 1
