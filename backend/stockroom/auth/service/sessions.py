"""Registration, login, refresh-token rotation and logout.

The outcome of a failed login is committed before the error is raised. Time comes in as `now`
(the app's clock), so throttling and token expiry are tested by moving the clock, not by sleeping.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom import events
from stockroom.auth import repository
from stockroom.auth.errors import (
    AccountLocked,
    InvalidCredentials,
    InvalidRefreshToken,
    RegistrationClosed,
)
from stockroom.auth.hashing import hash_password, verify_password
from stockroom.auth.repository import UserView
from stockroom.auth.schemas import RegisterRequest, TokenPair
from stockroom.auth.service._shared import (
    acting_as,
    hash_for_unknown_users,
    insert_user,
    issue_pair,
    seconds_until,
    user_view,
)
from stockroom.auth.tokens import hash_refresh_token
from stockroom.context import Context, Principal
from stockroom.db.session import transaction
from stockroom.settings import Settings

logger = structlog.get_logger("stockroom.auth")


async def register(
    session: AsyncSession, data: RegisterRequest, settings: Settings, ctx: Context
) -> UserView:
    """Self-registration: a new active user holding no roles at all."""
    if not settings.registration_open:
        raise RegistrationClosed()
    password_hash = await hash_password(data.password)
    async with transaction(session):
        user = await insert_user(
            session, email=str(data.email), full_name=data.full_name, password_hash=password_hash
        )
        events.record(
            session,
            "user.created",
            acting_as(ctx, user),
            entity=("user", user.id),
            data={"email": user.email, "full_name": user.full_name, "roles": [], "via": "register"},
        )
        view = await user_view(session, user.id)
    return view


@dataclass(frozen=True, slots=True)
class _LoginCandidate:
    user_id: uuid.UUID | None
    password_hash: str
    is_active: bool


async def login(
    session: AsyncSession,
    email: str,
    password: str,
    settings: Settings,
    ctx: Context,
    now: datetime,
) -> TokenPair:
    """Check credentials and issue a token pair, counting failures per account.

    The outcome of a failed attempt (counter, lockout, event) is committed before the 401/429 is
    raised. Unknown emails are verified against a dummy hash and counted like known ones, so
    neither timing nor lockout reveals whether an account exists.
    """
    email = email.strip().lower()
    if "\x00" in email or len(email) > 320:
        # No account can have this email (and PostgreSQL cannot store it): fail like one.
        await verify_password(password, await hash_for_unknown_users())
        raise InvalidCredentials()
    async with transaction(session):
        until = await repository.locked_until(session, email, now)
        if until is not None:
            events.record(
                session, "auth.login_failed", ctx, data={"email": email, "reason": "locked_out"}
            )
        user = None if until is not None else await repository.get_user_by_email(session, email)
        candidate = _LoginCandidate(user.id, user.password_hash, user.is_active) if user else None
    if until is not None:
        raise AccountLocked(seconds_until(until, now))

    if candidate is None:
        await verify_password(password, await hash_for_unknown_users())
        ok, upgraded = False, None
    else:
        ok, upgraded = await verify_password(password, candidate.password_hash)

    if ok and candidate is not None and candidate.is_active:
        return await _complete_login(
            session, candidate.user_id, email, upgraded, settings, ctx, now
        )

    reason = "unknown_email" if candidate is None else ("inactive" if ok else "wrong_password")
    async with transaction(session):
        locked = await repository.register_failure(
            session,
            email,
            now,
            window=timedelta(minutes=settings.login_lockout_minutes),
            max_failures=settings.login_max_failures,
            lockout=timedelta(minutes=settings.login_lockout_minutes),
        )
        # After the upsert, and skipping locked rows: never waits on another login's row.
        await repository.prune_stale_throttles(
            session, now, window=timedelta(minutes=settings.login_lockout_minutes), keep=email
        )
        entity = ("user", candidate.user_id) if candidate and candidate.user_id else None
        events.record(
            session,
            "auth.login_failed",
            ctx,
            entity=entity,
            data={"email": email, "reason": reason},
        )
        if locked is not None:
            events.record(
                session,
                "auth.locked_out",
                ctx,
                entity=entity,
                data={"email": email, "locked_until": locked},
            )
    logger.info("login failed", reason=reason, locked=locked is not None)
    raise InvalidCredentials()


async def _complete_login(
    session: AsyncSession,
    user_id: uuid.UUID | None,
    email: str,
    upgraded_hash: str | None,
    settings: Settings,
    ctx: Context,
    now: datetime,
) -> TokenPair:
    assert user_id is not None
    async with transaction(session):
        # A lockout may have landed while the password was being verified (a parallel burst).
        until = await repository.locked_until(session, email, now)
        user = None if until is not None else await repository.get_user(session, user_id)
        if until is None and user is not None and user.is_active:
            if upgraded_hash is not None:
                user.password_hash = upgraded_hash
            await repository.clear_failures(session, email)
            await repository.delete_expired_tokens(session, user.id, now)
            pair = issue_pair(session, user.id, settings, now)
            events.record(
                session, "auth.login_succeeded", acting_as(ctx, user), entity=("user", user.id)
            )
    if until is not None:
        raise AccountLocked(seconds_until(until, now))
    if user is None or not user.is_active:
        raise InvalidCredentials()
    return pair


async def refresh(
    session: AsyncSession, token: str, settings: Settings, ctx: Context, now: datetime
) -> TokenPair:
    """Rotate a refresh token. A token used twice revokes its whole family (theft signal)."""
    reused = False
    async with transaction(session):
        row = await repository.get_refresh_token_for_update(session, hash_refresh_token(token))
        if row is None:
            raise InvalidRefreshToken()
        if row.used_at is not None:
            reused = True
            await repository.revoke_family(session, row.family_id, now)
            user = await repository.get_user(session, row.user_id)
            actor_ctx = acting_as(ctx, user) if user else ctx
            events.record(
                session,
                "auth.refresh_reused",
                actor_ctx,
                entity=("user", row.user_id),
                data={"family_id": row.family_id},
            )
        elif row.revoked_at is not None or row.expires_at <= now:
            raise InvalidRefreshToken()
        else:
            user = await repository.get_user(session, row.user_id)
            if user is None or not user.is_active:
                raise InvalidRefreshToken()
            row.used_at = now
            pair = issue_pair(session, row.user_id, settings, now, family_id=row.family_id)
    if reused:
        logger.warning("refresh token reused; family revoked", user_id=str(row.user_id))
        raise InvalidRefreshToken()
    return pair


async def logout(
    session: AsyncSession, token: str, principal: Principal, ctx: Context, now: datetime
) -> None:
    """Revoke the token's family. Unknown or foreign tokens are ignored (logout is idempotent)."""
    async with transaction(session):
        row = await repository.get_refresh_token_for_update(session, hash_refresh_token(token))
        if row is None or row.user_id != principal.id:
            return
        revoked = await repository.revoke_family(session, row.family_id, now)
        if revoked:
            events.record(
                session,
                "auth.logged_out",
                ctx,
                entity=("user", principal.id),
                data={"family_id": row.family_id},
            )


async def warm_up() -> None:
    """Compute the dummy hash ahead of the first login, so the first unknown email is not
    measurably faster or slower than the rest."""
    await hash_for_unknown_users()
