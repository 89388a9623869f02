"""User administration: listing, creating, updating and deactivating users.

No one grants or manages permissions they do not hold, and the last active administrator stays.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom import events
from stockroom.auth import repository
from stockroom.auth.errors import EmailTaken, LastAdmin, UserNotFound, unknown_roles
from stockroom.auth.hashing import hash_password
from stockroom.auth.models import Role
from stockroom.auth.repository import UserView
from stockroom.auth.schemas import UserCreate, UserUpdate
from stockroom.auth.service._shared import (
    ADMIN_ROLE,
    USER_FIELDS,
    end_sessions,
    ensure_may_grant,
    flush_user,
    insert_user,
    snapshot_user,
    user_view,
)
from stockroom.context import Context, Principal
from stockroom.db.session import transaction
from stockroom.http.etag import check_if_match


async def _resolve_roles(
    session: AsyncSession, names: Iterable[str], loc: list[str | int]
) -> dict[str, Role]:
    wanted = set(names)
    found = await repository.roles_by_name(session, wanted)
    missing = wanted - set(found)
    if missing:
        raise unknown_roles(missing, loc)
    return found


async def list_users(
    session: AsyncSession,
    *,
    q: str | None,
    is_active: bool | None,
    role: str | None,
    sort_field: str,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[list[UserView], int]:
    """A page of users matching the filters."""
    async with transaction(session):
        return await repository.list_users(
            session,
            q=q,
            is_active=is_active,
            role=role,
            sort_field=sort_field,
            descending=descending,
            offset=offset,
            limit=limit,
        )


async def create_user(
    session: AsyncSession, data: UserCreate, actor: Principal, ctx: Context
) -> UserView:
    """An administrator creates a user with the given roles."""
    password_hash = await hash_password(data.password)
    async with transaction(session):
        roles = await _resolve_roles(session, data.roles, ["body", "roles"])
        granted = await repository.permissions_of_roles(session, [r.id for r in roles.values()])
        ensure_may_grant(actor, granted)
        user = await insert_user(
            session, email=str(data.email), full_name=data.full_name, password_hash=password_hash
        )
        await repository.set_user_roles(session, user.id, (r.id for r in roles.values()))
        events.record(
            session,
            "user.created",
            ctx,
            entity=("user", user.id),
            data={"email": user.email, "full_name": user.full_name, "roles": sorted(roles)},
        )
        view = await user_view(session, user.id)
    return view


async def update_user(
    session: AsyncSession,
    user_id: uuid.UUID,
    data: UserUpdate,
    if_match: str | None,
    actor: Principal,
    ctx: Context,
    now: datetime,
) -> UserView:
    """An administrator changes a user's profile, status, roles or password."""
    password_hash = await hash_password(data.password) if data.password is not None else None
    async with transaction(session):
        if data.roles is not None or data.is_active is False:
            await repository.lock_admin_set(session)
        user = await repository.get_user(session, user_id, for_update=True)
        if user is None:
            raise UserNotFound()
        check_if_match(if_match, user.version)
        current = await user_view(session, user.id)
        ensure_may_grant(actor, current.permissions)
        before = snapshot_user(user)

        if data.email is not None and data.email.lower() != user.email:
            if await repository.email_in_use(session, data.email, other_than=user.id):
                raise EmailTaken()
            user.email = data.email.lower()
        if data.full_name is not None:
            user.full_name = data.full_name

        new_roles: dict[str, Role] | None = None
        if data.roles is not None and set(data.roles) != set(current.roles):
            new_roles = await _resolve_roles(session, data.roles, ["body", "roles"])
            granted = await repository.permissions_of_roles(
                session, [r.id for r in new_roles.values()]
            )
            ensure_may_grant(actor, granted)

        deactivating = data.is_active is False and user.is_active
        reactivating = data.is_active is True and not user.is_active
        losing_admin = (
            ADMIN_ROLE in current.roles and new_roles is not None and ADMIN_ROLE not in new_roles
        )
        if (deactivating or losing_admin) and ADMIN_ROLE in current.roles and user.is_active:
            if await repository.count_active_admins(session, excluding=user.id) == 0:
                raise LastAdmin()
        if data.is_active is not None:
            user.is_active = data.is_active

        if new_roles is not None:
            await repository.set_user_roles(session, user.id, (r.id for r in new_roles.values()))
        revoked = 0
        if password_hash is not None:
            user.password_hash = password_hash
        if password_hash is not None or deactivating or reactivating:
            # Reactivation ends them too: a token from before the deactivation stays dead.
            end_sessions(user, now)
            revoked = await repository.revoke_user_tokens(session, user.id, now)
        # Roles live in another table: touch the user row so its version (the ETag) moves too.
        user.updated_at = now
        await flush_user(session)

        after = snapshot_user(user)
        changes = events.compute_changes(
            before, after, [f for f in USER_FIELDS if f != "is_active"]
        )
        if changes or password_hash is not None:
            data_: dict[str, Any] = {}
            if password_hash is not None:
                data_ = {"credentials": "reset", "refresh_tokens_revoked": revoked}
            events.record(
                session,
                "user.updated",
                ctx,
                entity=("user", user.id),
                changes=changes or None,
                data=data_ or None,
            )
        if before["is_active"] != after["is_active"]:
            events.record(
                session,
                "user.deactivated" if deactivating else "user.updated",
                ctx,
                entity=("user", user.id),
                changes=events.compute_changes(before, after, ["is_active"]),
                data={"refresh_tokens_revoked": revoked} if deactivating else None,
            )
        if new_roles is not None:
            events.record(
                session,
                "user.roles_changed",
                ctx,
                entity=("user", user.id),
                changes={"roles": {"old": current.roles, "new": sorted(new_roles)}},
            )
        view = await user_view(session, user.id)
    return view


async def deactivate_user(
    session: AsyncSession,
    user_id: uuid.UUID,
    if_match: str | None,
    actor: Principal,
    ctx: Context,
    now: datetime,
) -> None:
    """Deactivate a user: no more logins, and existing tokens stop working at once."""
    async with transaction(session):
        await repository.lock_admin_set(session)
        user = await repository.get_user(session, user_id, for_update=True)
        if user is None:
            raise UserNotFound()
        check_if_match(if_match, user.version)
        if not user.is_active:
            return
        current = await user_view(session, user.id)
        ensure_may_grant(actor, current.permissions)
        if ADMIN_ROLE in current.roles and (
            await repository.count_active_admins(session, excluding=user.id) == 0
        ):
            raise LastAdmin()
        user.is_active = False
        user.updated_at = now
        end_sessions(user, now)
        revoked = await repository.revoke_user_tokens(session, user.id, now)
        events.record(
            session,
            "user.deactivated",
            ctx,
            entity=("user", user.id),
            changes={"is_active": {"old": True, "new": False}},
            data={"refresh_tokens_revoked": revoked},
        )
