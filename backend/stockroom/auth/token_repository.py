"""SQL of signing in: refresh tokens (rotation, families, revocation) and the login throttle.
Re-exported from `stockroom.auth.repository`, where the services find it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth.models import LoginThrottle, RefreshToken

# --- refresh tokens ----------------------------------------------------------------------------


def add_refresh_token(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    token_hash: str,
    now: datetime,
    lifetime: timedelta,
) -> RefreshToken:
    row = RefreshToken(
        user_id=user_id,
        family_id=family_id,
        token_hash=token_hash,
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    return row


async def get_refresh_token_for_update(
    session: AsyncSession, token_hash: str
) -> RefreshToken | None:
    result: RefreshToken | None = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
    )
    return result


async def delete_expired_tokens(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    """Forget a user's expired refresh tokens (an expired token is refused whether or not its
    row still exists; rows of live families stay, so reuse within a family is still detected)."""
    await session.execute(
        delete(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.expires_at < now)
        .execution_options(synchronize_session=False)
    )


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> int:
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def revoke_user_tokens(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- login throttling --------------------------------------------------------------------------


async def locked_until(session: AsyncSession, email: str, now: datetime) -> datetime | None:
    """When the account's lockout ends, if it is locked at `now`."""
    until: datetime | None = await session.scalar(
        select(LoginThrottle.locked_until).where(
            LoginThrottle.email == email, LoginThrottle.locked_until > now
        )
    )
    return until


async def register_failure(
    session: AsyncSession,
    email: str,
    now: datetime,
    *,
    window: timedelta,
    max_failures: int,
    lockout: timedelta,
) -> datetime | None:
    """Count one failed login (atomically, across replicas); the lockout end if this one locks."""
    table = LoginThrottle.__table__
    expired = table.c.window_started_at <= now - window
    # A failure that raced a lockout (it passed the lock check before the lock committed) is
    # not counted again: one burst gives one lockout, not a chain of them.
    locked = table.c.locked_until > now
    statement = (
        insert(LoginThrottle)
        .values(email=email, failures=1, window_started_at=now, locked_until=None)
        .on_conflict_do_update(
            index_elements=[LoginThrottle.email],
            set_={
                "failures": case(
                    (locked, table.c.failures), (expired, 1), else_=table.c.failures + 1
                ),
                "window_started_at": case(
                    (locked, table.c.window_started_at),
                    (expired, now),
                    else_=table.c.window_started_at,
                ),
            },
        )
        .returning(LoginThrottle.failures, LoginThrottle.locked_until)
    )
    failures, current_lock = (await session.execute(statement)).one()
    if (current_lock is not None and current_lock > now) or failures < max_failures:
        return None
    until = now + lockout
    await session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.email == email)
        .values(failures=0, window_started_at=now, locked_until=until)
        .execution_options(synchronize_session=False)
    )
    return until


async def prune_stale_throttles(
    session: AsyncSession, now: datetime, *, window: timedelta, keep: str, batch: int = 100
) -> None:
    """Delete a batch of counters whose window has passed and that lock nothing: they would be
    reset on the next failure anyway, and a spray of unknown emails must not grow the table."""
    stale = (
        select(LoginThrottle.email)
        .where(
            LoginThrottle.window_started_at < now - window,
            LoginThrottle.email != keep,
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now),
        )
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    await session.execute(
        delete(LoginThrottle)
        .where(LoginThrottle.email.in_(stale.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )


async def clear_failures(session: AsyncSession, email: str) -> None:
    await session.execute(
        delete(LoginThrottle)
        .where(LoginThrottle.email == email)
        .execution_options(synchronize_session=False)
    )
