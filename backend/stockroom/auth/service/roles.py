"""Roles and their permissions: listing, reading, creating and updating custom roles."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom import events
from stockroom.auth import repository
from stockroom.auth.errors import RoleExists, RoleNotFound, SystemRoleImmutable
from stockroom.auth.models import Role
from stockroom.auth.repository import RoleView
from stockroom.auth.schemas import RoleCreate, RoleUpdate
from stockroom.auth.service._shared import ensure_may_grant
from stockroom.context import Context, Principal
from stockroom.db.session import transaction
from stockroom.types import utcnow


async def list_roles(
    session: AsyncSession, *, sort_field: str, descending: bool, offset: int, limit: int
) -> tuple[list[RoleView], int]:
    """A page of roles with their permissions."""
    async with transaction(session):
        return await repository.list_roles(
            session, sort_field=sort_field, descending=descending, offset=offset, limit=limit
        )


async def get_role(session: AsyncSession, name: str) -> RoleView:
    """One role with its permissions."""
    async with transaction(session):
        view = await repository.get_role_view(session, name)
    if view is None:
        raise RoleNotFound()
    return view


async def create_role(
    session: AsyncSession, data: RoleCreate, actor: Principal, ctx: Context
) -> RoleView:
    """A custom role from the permission set."""
    permissions = sorted({str(p) for p in data.permissions})
    ensure_may_grant(actor, permissions)
    async with transaction(session):
        if await repository.role_name_taken(session, data.name):
            raise RoleExists()
        role = Role(name=data.name, description=data.description, is_system=False)
        session.add(role)
        try:
            await session.flush()
        except IntegrityError:
            raise RoleExists() from None
        await repository.set_role_permissions(session, role.id, permissions)
        events.record(
            session,
            "role.created",
            ctx,
            entity=("role", role.id),
            data={"name": role.name, "description": role.description, "permissions": permissions},
        )
        view = await repository.get_role_view(session, role.name)
    assert view is not None
    return view


async def update_role(
    session: AsyncSession, name: str, data: RoleUpdate, actor: Principal, ctx: Context
) -> RoleView:
    """Change a role's description or (custom roles only) its permissions."""
    async with transaction(session):
        current = await repository.get_role_view(session, name, for_update=True)
        if current is None:
            raise RoleNotFound()
        role = current.role
        changes: dict[str, dict[str, Any]] = {}
        if data.permissions is not None:
            new = sorted({str(p) for p in data.permissions})
            if new != current.permissions:
                if role.is_system:
                    raise SystemRoleImmutable()
                ensure_may_grant(actor, set(new) | set(current.permissions))
                await repository.set_role_permissions(session, role.id, new)
                changes["permissions"] = {"old": current.permissions, "new": new}
        if data.description is not None and data.description != role.description:
            changes["description"] = {"old": role.description, "new": data.description}
            role.description = data.description
        if changes:
            role.updated_at = utcnow()
            events.record(
                session,
                "role.updated",
                ctx,
                entity=("role", role.id),
                changes=changes,
                data={"name": role.name},
            )
        view = await repository.get_role_view(session, role.name)
    assert view is not None
    return view
