"""What the auth use cases share: the admin role's name, the token pair, the user insert and view,
and the dummy hash that makes an unknown email cost as much as a wrong password."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth import repository
from stockroom.auth.errors import EmailTaken, GrantBeyondOwnPermissions, UserNotFound
from stockroom.auth.hashing import hash_password
from stockroom.auth.models import User
from stockroom.auth.repository import UserView
from stockroom.auth.schemas import TokenPair
from stockroom.auth.tokens import create_access_token, hash_refresh_token, new_refresh_token
from stockroom.context import Actor, Context, Principal
from stockroom.db.base import uuid7
from stockroom.settings import Settings

ADMIN_ROLE = "admin"
USER_FIELDS = ("email", "full_name", "is_active")

_dummy_hash: str | None = None


async def hash_for_unknown_users() -> str:
    """A real Argon2id hash with the current parameters, verified when the email is unknown so
    that a wrong email costs the same time as a wrong password."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = await hash_password(secrets.token_urlsafe(32))
    return _dummy_hash


def snapshot_user(user: User) -> dict[str, Any]:
    return {field: getattr(user, field) for field in USER_FIELDS}


def acting_as(ctx: Context, user: User) -> Context:
    return replace(ctx, actor=Actor(id=user.id, email=user.email))


def seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 0.999))


def issue_pair(
    session: AsyncSession,
    user_id: uuid.UUID,
    settings: Settings,
    now: datetime,
    *,
    family_id: uuid.UUID | None = None,
) -> TokenPair:
    refresh = new_refresh_token()
    # The refresh-token family is the session: the access token names it, and ends with it.
    session_id = family_id or uuid7()
    repository.add_refresh_token(
        session,
        user_id=user_id,
        family_id=session_id,
        token_hash=hash_refresh_token(refresh),
        now=now,
        lifetime=timedelta(days=settings.refresh_token_expire_days),
    )
    access, expires_in = create_access_token(user_id, session_id, settings, now=now)
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=expires_in)


async def insert_user(
    session: AsyncSession, *, email: str, full_name: str, password_hash: str
) -> User:
    email = email.lower()
    if await repository.email_in_use(session, email):
        raise EmailTaken()
    user = User(email=email, full_name=full_name, password_hash=password_hash, is_active=True)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent registration of the same email won the race
        raise EmailTaken() from None
    return user


async def user_view(session: AsyncSession, user_id: uuid.UUID) -> UserView:
    view = await repository.get_user_view(session, user_id)
    if view is None:
        raise UserNotFound()
    return view


async def flush_user(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise EmailTaken() from None


def end_sessions(user: User, now: datetime) -> None:
    """Every access token issued before `now` stops working on its next request (the refresh
    tokens are revoked by the caller, in the same transaction)."""
    user.sessions_valid_after = now


def ensure_may_grant(actor: Principal, permissions: Iterable[str]) -> None:
    beyond = set(permissions) - actor.permissions
    if beyond:
        raise GrantBeyondOwnPermissions(
            f"you cannot grant or manage permissions you do not hold: {', '.join(sorted(beyond))}"
        )
