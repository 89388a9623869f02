"""A user's own profile: reading it, changing the name or email, changing the password."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom import events
from stockroom.auth import repository
from stockroom.auth.errors import (
    AccountLocked,
    EmailTaken,
    UserNotFound,
    WrongCurrentPassword,
    WrongPassword,
)
from stockroom.auth.hashing import hash_password, verify_password
from stockroom.auth.repository import UserView
from stockroom.auth.schemas import PasswordChange, ProfileUpdate
from stockroom.auth.service._shared import (
    USER_FIELDS,
    end_sessions,
    flush_user,
    seconds_until,
    snapshot_user,
    user_view,
)
from stockroom.context import Context, Principal
from stockroom.db.session import transaction
from stockroom.http.etag import check_if_match
from stockroom.settings import Settings


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> UserView:
    """One user with roles and effective permissions."""
    async with transaction(session):
        return await user_view(session, user_id)


async def _current_password_is_right(
    session: AsyncSession,
    principal: Principal,
    password: str,
    settings: Settings,
    ctx: Context,
    now: datetime,
) -> bool:
    """Check the caller's current password. A wrong one counts as a failed login (committed
    before the caller raises), so a stolen access token cannot guess the password faster than
    the login form allows; a locked account is 429 whatever the password."""
    async with transaction(session):
        until = await repository.locked_until(session, principal.email, now)
        user = await repository.get_user(session, principal.id)
        current_hash = user.password_hash if user else None
    if until is not None:
        raise AccountLocked(seconds_until(until, now))
    if current_hash is None:
        raise UserNotFound()
    ok, _ = await verify_password(password, current_hash)
    if not ok:
        async with transaction(session):
            await repository.register_failure(
                session,
                principal.email,
                now,
                window=timedelta(minutes=settings.login_lockout_minutes),
                max_failures=settings.login_max_failures,
                lockout=timedelta(minutes=settings.login_lockout_minutes),
            )
            events.record(
                session,
                "auth.login_failed",
                ctx,
                entity=("user", principal.id),
                data={"email": principal.email, "reason": "wrong_current_password"},
            )
    return ok


async def update_profile(
    session: AsyncSession,
    principal: Principal,
    data: ProfileUpdate,
    if_match: str | None,
    settings: Settings,
    ctx: Context,
    now: datetime,
) -> UserView:
    """Change one's own full name, or email (with the current password: 403 when wrong)."""
    changing_email = data.email is not None and data.email.lower() != principal.email
    if changing_email:
        assert data.current_password is not None  # the schema requires it with `email`
        if not await _current_password_is_right(
            session, principal, data.current_password, settings, ctx, now
        ):
            raise WrongCurrentPassword()
    async with transaction(session):
        user = await repository.get_user(session, principal.id, for_update=True)
        if user is None:
            raise UserNotFound()
        check_if_match(if_match, user.version)
        before = snapshot_user(user)
        if changing_email and data.email is not None and data.email.lower() != user.email:
            if await repository.email_in_use(session, data.email, other_than=user.id):
                raise EmailTaken()
            user.email = data.email.lower()
        if data.full_name is not None:
            user.full_name = data.full_name
        changes = events.compute_changes(before, snapshot_user(user), USER_FIELDS)
        if changes:
            await flush_user(session)
            events.record(session, "user.updated", ctx, entity=("user", user.id), changes=changes)
        view = await user_view(session, user.id)
    return view


async def change_password(
    session: AsyncSession,
    principal: Principal,
    data: PasswordChange,
    settings: Settings,
    ctx: Context,
    now: datetime,
) -> None:
    """Change one's own password; every session of the user ends (refresh tokens revoked,
    access tokens issued before now refused)."""
    if not await _current_password_is_right(
        session, principal, data.current_password, settings, ctx, now
    ):
        raise WrongPassword.at(
            ["body", "current_password"], "the current password is not correct", "wrong_password"
        )
    new_hash = await hash_password(data.new_password)
    async with transaction(session):
        user = await repository.get_user(session, principal.id, for_update=True)
        if user is None:
            raise UserNotFound()
        user.password_hash = new_hash
        end_sessions(user, now)
        revoked = await repository.revoke_user_tokens(session, user.id, now)
        events.record(
            session,
            "user.updated",
            ctx,
            entity=("user", user.id),
            data={"credentials": "changed", "refresh_tokens_revoked": revoked},
        )
