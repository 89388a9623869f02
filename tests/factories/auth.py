"""Users with roles, and bearer headers that skip the login round trip."""

from __future__ import annotations

import uuid
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth import repository
from stockroom.auth.hashing import hash_password_sync
from stockroom.auth.models import User, UserRole
from stockroom.auth.tokens import create_access_token
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


def bearer_headers(user_id: uuid.UUID, settings: Settings) -> dict[str, str]:
    token, _ = create_access_token(user_id, settings)
    return {"Authorization": f"Bearer {token}"}
