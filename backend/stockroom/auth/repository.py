"""SQL of the auth domain."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    bindparam,
    delete,
    exists,
    false,
    func,
    inspect,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth.models import (
    RefreshToken,
    Role,
    RolePermission,
    User,
    UserRole,
)

# Signing in's SQL lives in `token_repository`; re-exported for the services.
from stockroom.auth.token_repository import add_refresh_token as add_refresh_token
from stockroom.auth.token_repository import clear_failures as clear_failures
from stockroom.auth.token_repository import delete_expired_tokens as delete_expired_tokens
from stockroom.auth.token_repository import (
    get_refresh_token_for_update as get_refresh_token_for_update,
)
from stockroom.auth.token_repository import locked_until as locked_until
from stockroom.auth.token_repository import prune_stale_throttles as prune_stale_throttles
from stockroom.auth.token_repository import register_failure as register_failure
from stockroom.auth.token_repository import revoke_family as revoke_family
from stockroom.auth.token_repository import revoke_user_tokens as revoke_user_tokens
from stockroom.context import Principal
from stockroom.db.like import like_pattern
from stockroom.db.session import DriverQuery


@dataclass(frozen=True, slots=True)
class UserView:
    """A user row with its role names and effective permissions (both sorted)."""

    user: User
    roles: list[str]
    permissions: list[str]


@dataclass(frozen=True, slots=True)
class RoleView:
    role: Role
    permissions: list[str]


_EMPTY_ARRAY: ColumnElement[Any] = literal_column("ARRAY[]::varchar[]")


def _role_names_of_user() -> ScalarSelect[Any]:
    return (
        select(
            func.coalesce(func.array_agg(aggregate_order_by(Role.name, Role.name)), _EMPTY_ARRAY)
        )
        .select_from(UserRole)
        .join(Role, Role.id == UserRole.role_id)
        .where(UserRole.user_id == User.id)
        .scalar_subquery()
    )


def _permissions_of_user() -> ScalarSelect[Any]:
    return (
        select(func.coalesce(func.array_agg(RolePermission.permission.distinct()), _EMPTY_ARRAY))
        .select_from(UserRole)
        .join(RolePermission, RolePermission.role_id == UserRole.role_id)
        .where(UserRole.user_id == User.id)
        .scalar_subquery()
    )


def _permissions_of_role() -> ScalarSelect[Any]:
    return (
        select(
            func.coalesce(
                func.array_agg(
                    aggregate_order_by(RolePermission.permission, RolePermission.permission)
                ),
                _EMPTY_ARRAY,
            )
        )
        .where(RolePermission.role_id == Role.id)
        .scalar_subquery()
    )


def _session_is_live() -> ScalarSelect[Any]:
    """Whether the token's session (`session_id`, its refresh-token family) is the user's and
    live. Every revocation (logout, reuse of a used refresh token, password change,
    deactivation) revokes whole families, so one revoked member ends the session; an unknown
    family gives no rows, hence false."""
    return (
        select(func.coalesce(func.bool_and(RefreshToken.revoked_at.is_(None)), false()))
        .where(RefreshToken.family_id == bindparam("session_id"), RefreshToken.user_id == User.id)
        .scalar_subquery()
    )


def _token_is_current() -> ColumnElement[bool]:
    """Whether the token was issued after the user's last password change or (re)activation."""
    return or_(
        User.sessions_valid_after.is_(None), User.sessions_valid_after <= bindparam("issued_at")
    )


# Built once: constructing this statement (and its cache key) on every request cost more than
# running it. Executions bind `user_id`, `session_id` and `issued_at`; SQLAlchemy's compiled
# cache does the rest. The session checks ride in the same statement: no extra round trip.
PRINCIPAL_QUERY = select(
    User.id,
    User.email,
    User.full_name,
    User.is_active,
    _role_names_of_user(),
    _permissions_of_user(),
    _session_is_live(),
    _token_is_current(),
).where(User.id == bindparam("user_id"))

_USER_VIEW_QUERY = select(User, _role_names_of_user(), _permissions_of_user()).where(
    User.id == bindparam("user_id")
)
# The user's mapped attributes and their columns, so a row of plain columns makes a `User`.
_USER_ATTRIBUTES = tuple((attr.key, attr.columns[0]) for attr in inspect(User).column_attrs)
_PROFILE_QUERY = select(
    *(column for _, column in _USER_ATTRIBUTES),
    _role_names_of_user(),
    _permissions_of_user(),
    _session_is_live(),
    _token_is_current(),
).where(User.id == bindparam("user_id"))


@dataclass(frozen=True, slots=True)
class TokenSession:
    """What an access token claims beside its user: its session and when it was issued."""

    session_id: uuid.UUID
    issued_at: datetime

    def params(self, user_id: uuid.UUID) -> dict[str, Any]:
        return {"user_id": user_id, "session_id": self.session_id, "issued_at": self.issued_at}


_PRINCIPAL = DriverQuery.of(PRINCIPAL_QUERY)
_PROFILE = DriverQuery.of(_PROFILE_QUERY)


async def load_principal(
    session: AsyncSession | asyncpg.Connection, user_id: uuid.UUID, token: TokenSession
) -> Principal | None:
    """The user and their effective permissions, in one query: one round trip (on the session's
    driver connection, or a leased one). None when the
    token's session has ended or the token predates the user's last password change or
    reactivation."""
    row = await _PRINCIPAL.fetchrow(session, token.params(user_id))
    if row is None or not row[6] or not row[7]:
        return None
    return Principal(
        id=row[0],
        email=row[1],
        full_name=row[2],
        is_active=row[3],
        roles=tuple(row[4]),
        permissions=frozenset(row[5]),
    )


async def load_profile(
    session: AsyncSession | asyncpg.Connection, user_id: uuid.UUID, token: TokenSession
) -> UserView | None:
    """`get_user_view` for the token's own user, with `load_principal`'s session checks: one
    round trip, like `load_principal`. The user is a detached `User` built from the row."""
    row = await _PROFILE.fetchrow(session, token.params(user_id))
    n = len(_USER_ATTRIBUTES)
    if row is None or not row[n + 2] or not row[n + 3]:
        return None
    user = User(**{key: row[i] for i, (key, _) in enumerate(_USER_ATTRIBUTES)})
    return UserView(user=user, roles=list(row[n]), permissions=sorted(row[n + 1]))


# --- users -------------------------------------------------------------------------------------


async def roles_by_name(session: AsyncSession, names: Iterable[str]) -> dict[str, Role]:
    wanted = set(names)
    if not wanted:
        return {}
    result = await session.scalars(select(Role).where(Role.name.in_(wanted)))
    return {role.name: role for role in result}


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    result: User | None = await session.scalar(select(User).where(User.email == email.lower()))
    return result


async def get_user(
    session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False
) -> User | None:
    statement = select(User).where(User.id == user_id)
    if for_update:
        statement = statement.with_for_update()
    result: User | None = await session.scalar(statement)
    return result


async def email_in_use(
    session: AsyncSession, email: str, *, other_than: uuid.UUID | None = None
) -> bool:
    condition = User.email == email.lower()
    if other_than is not None:
        condition = condition & (User.id != other_than)
    return bool(await session.scalar(select(exists().where(condition))))


async def get_user_view(session: AsyncSession, user_id: uuid.UUID) -> UserView | None:
    row = (await session.execute(_USER_VIEW_QUERY, {"user_id": user_id})).one_or_none()
    if row is None:
        return None
    return UserView(user=row[0], roles=list(row[1]), permissions=sorted(row[2]))


USER_SORT_COLUMNS: dict[str, Any] = {
    "email": User.email,
    "full_name": User.full_name,
    "created_at": User.created_at,
    "updated_at": User.updated_at,
}


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
    conditions: list[ColumnElement[bool]] = []
    if q:
        pattern = like_pattern(q)
        conditions.append(
            or_(User.email.ilike(pattern, escape="\\"), User.full_name.ilike(pattern, escape="\\"))
        )
    if is_active is not None:
        conditions.append(User.is_active.is_(is_active))
    if role:
        conditions.append(
            exists()
            .where(UserRole.user_id == User.id, UserRole.role_id == Role.id, Role.name == role)
            .correlate(User)
        )
    total = await session.scalar(select(func.count()).select_from(User).where(*conditions))
    column = USER_SORT_COLUMNS[sort_field]
    order = [column.desc() if descending else column.asc(), User.id.asc()]
    rows = await session.execute(
        select(User, _role_names_of_user(), _permissions_of_user())
        .where(*conditions)
        .order_by(*order)
        .offset(offset)
        .limit(limit)
    )
    views = [UserView(user=r[0], roles=list(r[1]), permissions=sorted(r[2])) for r in rows]
    return views, int(total or 0)


async def set_user_roles(
    session: AsyncSession, user_id: uuid.UUID, role_ids: Iterable[uuid.UUID]
) -> None:
    await session.execute(delete(UserRole).where(UserRole.user_id == user_id))
    for role_id in set(role_ids):
        session.add(UserRole(user_id=user_id, role_id=role_id))
    await session.flush()


async def count_active_admins(session: AsyncSession, *, excluding: uuid.UUID | None) -> int:
    """Active users holding the `admin` role, optionally leaving one user out of the count."""
    statement = (
        select(func.count(func.distinct(User.id)))
        .select_from(User)
        .join(UserRole, UserRole.user_id == User.id)
        .join(Role, Role.id == UserRole.role_id)
        .where(Role.name == "admin", User.is_active.is_(True))
    )
    if excluding is not None:
        statement = statement.where(User.id != excluding)
    return int(await session.scalar(statement) or 0)


async def lock_admin_set(session: AsyncSession) -> None:
    """Serialize changes that could remove the last administrator (transaction-scoped lock)."""
    await session.execute(select(func.pg_advisory_xact_lock(0x5700_AD31)))


# --- roles -------------------------------------------------------------------------------------


ROLE_SORT_COLUMNS: dict[str, Any] = {"name": Role.name, "created_at": Role.created_at}


async def list_roles(
    session: AsyncSession, *, sort_field: str, descending: bool, offset: int, limit: int
) -> tuple[list[RoleView], int]:
    total = await session.scalar(select(func.count()).select_from(Role))
    column = ROLE_SORT_COLUMNS[sort_field]
    rows = await session.execute(
        select(Role, _permissions_of_role())
        .order_by(column.desc() if descending else column.asc(), Role.id)
        .offset(offset)
        .limit(limit)
    )
    return [RoleView(role=r[0], permissions=list(r[1])) for r in rows], int(total or 0)


async def get_role_view(
    session: AsyncSession, name: str, *, for_update: bool = False
) -> RoleView | None:
    statement = select(Role, _permissions_of_role()).where(Role.name == name)
    if for_update:
        statement = statement.with_for_update(of=Role)
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        return None
    return RoleView(role=row[0], permissions=list(row[1]))


async def permissions_of_roles(session: AsyncSession, role_ids: Sequence[uuid.UUID]) -> set[str]:
    if not role_ids:
        return set()
    result = await session.scalars(
        select(RolePermission.permission).where(RolePermission.role_id.in_(role_ids)).distinct()
    )
    return set(result)


async def set_role_permissions(
    session: AsyncSession, role_id: uuid.UUID, permissions: Iterable[str]
) -> None:
    await session.execute(delete(RolePermission).where(RolePermission.role_id == role_id))
    for permission in set(permissions):
        session.add(RolePermission(role_id=role_id, permission=permission))
    await session.flush()


async def role_name_taken(session: AsyncSession, name: str) -> bool:
    return bool(await session.scalar(select(exists().where(Role.name == name))))
