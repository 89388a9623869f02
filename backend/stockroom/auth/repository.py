"""SQL of the auth domain."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth.models import Role, RolePermission, User, UserRole


@dataclass(frozen=True, slots=True)
class Principal:
    """A user with their effective roles and permissions, as loaded for one request."""

    id: uuid.UUID
    email: str
    full_name: str
    is_active: bool
    roles: tuple[str, ...]
    permissions: frozenset[str]

    def can(self, permission: str) -> bool:
        return permission in self.permissions


async def load_principal(session: AsyncSession, user_id: uuid.UUID) -> Principal | None:
    """The user and their effective permissions, in one query."""
    role_names = (
        select(
            func.coalesce(
                func.array_agg(aggregate_order_by(Role.name, Role.name)),
                literal_column("ARRAY[]::varchar[]"),
            )
        )
        .select_from(UserRole)
        .join(Role, Role.id == UserRole.role_id)
        .where(UserRole.user_id == User.id)
        .scalar_subquery()
    )
    permissions = (
        select(
            func.coalesce(
                func.array_agg(RolePermission.permission.distinct()),
                literal_column("ARRAY[]::varchar[]"),
            )
        )
        .select_from(UserRole)
        .join(RolePermission, RolePermission.role_id == UserRole.role_id)
        .where(UserRole.user_id == User.id)
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(
                User.id, User.email, User.full_name, User.is_active, role_names, permissions
            ).where(User.id == user_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return Principal(
        id=row[0],
        email=row[1],
        full_name=row[2],
        is_active=row[3],
        roles=tuple(row[4]),
        permissions=frozenset(row[5]),
    )


async def roles_by_name(session: AsyncSession, names: Iterable[str]) -> dict[str, Role]:
    wanted = set(names)
    if not wanted:
        return {}
    result = await session.scalars(select(Role).where(Role.name.in_(wanted)))
    return {role.name: role for role in result}


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    result: User | None = await session.scalar(select(User).where(User.email == email.lower()))
    return result
