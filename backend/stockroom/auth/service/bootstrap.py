"""Bootstrap and security events: the first administrator, and recording refused requests."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom import events
from stockroom.auth import repository
from stockroom.auth.hashing import hash_password
from stockroom.auth.models import UserRole
from stockroom.auth.service._shared import ADMIN_ROLE, end_sessions, insert_user, user_view
from stockroom.context import Context
from stockroom.db.session import transaction
from stockroom.types import utcnow


async def record_permission_denied(
    sessionmaker: async_sessionmaker[AsyncSession], ctx: Context, permission: str
) -> None:
    """Record a refused request in its own short transaction (the request itself fails)."""
    async with sessionmaker() as session, transaction(session):
        events.record(
            session,
            "auth.permission_denied",
            ctx,
            entity=("user", ctx.actor.id) if ctx.actor else None,
            data={"permission": permission},
        )


def generate_password() -> str:
    """A strong random password (about 190 bits) for a bootstrap administrator."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class AdminResult:
    user_id: uuid.UUID
    email: str
    created: bool


async def ensure_admin(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    full_name: str,
    reset_existing: bool,
    ctx: Context,
) -> AdminResult:
    """Create an administrator, or (with `reset_existing`) give an existing user the admin role,
    a new password and active status. Without it, an existing user is left untouched."""
    email = email.strip().lower()
    password_hash = await hash_password(password)
    async with transaction(session):
        await repository.lock_admin_set(session)
        roles = await repository.roles_by_name(session, [ADMIN_ROLE])
        admin_role = roles[ADMIN_ROLE]
        user = await repository.get_user_by_email(session, email)
        if user is not None:
            if not reset_existing:
                return AdminResult(user.id, user.email, created=False)
            view = await user_view(session, user.id)
            user.password_hash = password_hash
            user.is_active = True
            if ADMIN_ROLE not in view.roles:
                session.add(UserRole(user_id=user.id, role_id=admin_role.id))
            end_sessions(user, utcnow())
            await repository.revoke_user_tokens(session, user.id, utcnow())
            user.updated_at = utcnow()
            await session.flush()
            events.record(
                session,
                "user.updated",
                ctx,
                entity=("user", user.id),
                data={"credentials": "reset", "granted_admin": ADMIN_ROLE not in view.roles},
            )
            return AdminResult(user.id, user.email, created=False)
        user = await insert_user(
            session, email=email, full_name=full_name, password_hash=password_hash
        )
        session.add(UserRole(user_id=user.id, role_id=admin_role.id))
        await session.flush()
        events.record(
            session,
            "user.created",
            ctx,
            entity=("user", user.id),
            data={"email": user.email, "full_name": full_name, "roles": [ADMIN_ROLE]},
        )
        return AdminResult(user.id, user.email, created=True)


async def has_active_admin(session: AsyncSession) -> bool:
    async with transaction(session):
        return await repository.count_active_admins(session, excluding=None) > 0
