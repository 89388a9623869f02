"""Users with roles, and bearer headers that skip the login round trip."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth import repository
from stockroom.auth.hashing import hash_password_sync
from stockroom.auth.models import User, UserRole
from stockroom.auth.tokens import create_access_token, hash_refresh_token, new_refresh_token
from stockroom.settings import Settings

DEFAULT_PASSWORD = "correct horse battery staple"


@lru_cache
def default_password_hash() -> str:
    # Argon2 is deliberately slow; hash the shared test password once per run.
    return hash_password_sync(DEFAULT_PASSWORD)


async def make_user(
    session: AsyncSession,
    *,
    roles: list[str] | None = None,
    email: str | None = None,
    full_name: str = "Test User",
    password: str | None = None,
    is_active: bool = True,
) -> User:
    user = User(
        email=(email or f"user-{uuid.uuid4().hex[:10]}@example.com").lower(),
        full_name=full_name,
        password_hash=hash_password_sync(password) if password else default_password_hash(),
        is_active=is_active,
    )
    session.add(user)
    await session.flush()
    found = await repository.roles_by_name(session, roles or [])
    missing = set(roles or []) - set(found)
    assert not missing, f"unknown roles {missing}"
    for role in found.values():
        session.add(UserRole(user_id=user.id, role_id=role.id))
    await session.flush()
    return user


async def start_session(session: AsyncSession, user_id: uuid.UUID) -> uuid.UUID:
    """A live session for the user, as a login starts one: a refresh-token family of one."""
    family_id = uuid.uuid4()
    repository.add_refresh_token(
        session,
        user_id=user_id,
        family_id=family_id,
        token_hash=hash_refresh_token(new_refresh_token()),
        now=datetime.now(UTC),
        lifetime=timedelta(days=1),
    )
    await session.flush()
    return family_id


async def bearer_headers(
    session: AsyncSession, user_id: uuid.UUID, settings: Settings
) -> dict[str, str]:
    """Headers with an access token of a new live session (skips the login round trip)."""
    token, _ = create_access_token(user_id, await start_session(session, user_id), settings)
    return {"Authorization": f"Bearer {token}"}


async def login_pair(
    client: httpx.AsyncClient, email: str, password: str = DEFAULT_PASSWORD
) -> dict[str, Any]:
    """Log in through the JSON route and return the token pair (asserting success)."""
    response = await client.post(
        "/api/v1/auth/login-json", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


def auth_headers(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def outbox_payloads(session: AsyncSession, type_: str | None = None) -> list[dict[str, Any]]:
    """Payloads of the outbox events recorded so far (optionally of one type), oldest first."""
    from sqlalchemy import select

    from stockroom.events.models import OutboxEvent

    statement = select(OutboxEvent.payload).order_by(OutboxEvent.occurred_at, OutboxEvent.id)
    if type_ is not None:
        statement = statement.where(OutboxEvent.type == type_)
    return list(await session.scalars(statement))


class FakeClock:
    """A settable clock for `app.state.clock`: tests move time instead of sleeping."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def make_role(session: AsyncSession, permissions: list[str], name: str | None = None) -> str:
    """A custom role holding exactly `permissions`; returns its name (for `client_as`)."""
    from stockroom.auth.models import Role

    role = Role(name=name or f"custom-{uuid.uuid4().hex[:8]}", description="test role")
    session.add(role)
    await session.flush()
    await repository.set_role_permissions(session, role.id, permissions)
    return role.name
