"""Use cases of the auth domain: registration, login, tokens, users and roles.

Each public function owns its transaction. Time comes in as `now` (the app's clock), so
throttling and token expiry are tested by moving the clock, not by sleeping.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom import events
from stockroom.auth import repository
from stockroom.auth.errors import (
    AccountLocked,
    EmailTaken,
    GrantBeyondOwnPermissions,
    InvalidCredentials,
    InvalidRefreshToken,
    LastAdmin,
    RegistrationClosed,
    RoleExists,
    RoleNotFound,
    SystemRoleImmutable,
    UserNotFound,
    WrongPassword,
    unknown_roles,
)
from stockroom.auth.hashing import hash_password, verify_password
from stockroom.auth.models import Role, User, UserRole
from stockroom.auth.repository import Principal, RoleView, UserView
from stockroom.auth.schemas import (
    PasswordChange,
    ProfileUpdate,
    RegisterRequest,
    RoleCreate,
    RoleUpdate,
    TokenPair,
    UserCreate,
    UserUpdate,
)
from stockroom.auth.tokens import create_access_token, hash_refresh_token, new_refresh_token
from stockroom.db.base import utcnow, uuid7
from stockroom.db.session import transaction
from stockroom.http.context import Actor, Context
from stockroom.http.etag import check_if_match
from stockroom.settings import Settings

logger = structlog.get_logger("stockroom.auth")

ADMIN_ROLE = "admin"
USER_FIELDS = ("email", "full_name", "is_active")

_dummy_hash: str | None = None


async def _hash_for_unknown_users() -> str:
    """A real Argon2id hash with the current parameters, verified when the email is unknown so
    that a wrong email costs the same time as a wrong password."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = await hash_password(secrets.token_urlsafe(32))
    return _dummy_hash


def _snapshot(user: User) -> dict[str, Any]:
    return {field: getattr(user, field) for field in USER_FIELDS}


def _acting_as(ctx: Context, user: User) -> Context:
    return replace(ctx, actor=Actor(id=user.id, email=user.email))


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 0.999))


def _issue_pair(
    session: AsyncSession,
    user_id: uuid.UUID,
    settings: Settings,
    now: datetime,
    *,
    family_id: uuid.UUID | None = None,
) -> TokenPair:
    refresh = new_refresh_token()
    repository.add_refresh_token(
        session,
        user_id=user_id,
        family_id=family_id or uuid7(),
        token_hash=hash_refresh_token(refresh),
        now=now,
        lifetime=timedelta(days=settings.refresh_token_expire_days),
    )
    access, expires_in = create_access_token(user_id, settings, now=now)
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=expires_in)


# --- registration and login --------------------------------------------------------------------


async def register(
    session: AsyncSession, data: RegisterRequest, settings: Settings, ctx: Context
) -> UserView:
    """Self-registration: a new active user holding no roles at all."""
    if not settings.registration_open:
        raise RegistrationClosed()
    password_hash = await hash_password(data.password)
    async with transaction(session):
        user = await _insert_user(
            session, email=str(data.email), full_name=data.full_name, password_hash=password_hash
        )
        events.record(
            session,
            "user.created",
            _acting_as(ctx, user),
            entity=("user", user.id),
            data={"email": user.email, "full_name": user.full_name, "roles": [], "via": "register"},
        )
        view = await _view(session, user.id)
    return view


async def _insert_user(
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
        await verify_password(password, await _hash_for_unknown_users())
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
        raise AccountLocked(_seconds_until(until, now))

    if candidate is None:
        await verify_password(password, await _hash_for_unknown_users())
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
            pair = _issue_pair(session, user.id, settings, now)
            events.record(
                session, "auth.login_succeeded", _acting_as(ctx, user), entity=("user", user.id)
            )
    if until is not None:
        raise AccountLocked(_seconds_until(until, now))
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
            actor_ctx = _acting_as(ctx, user) if user else ctx
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
            pair = _issue_pair(session, row.user_id, settings, now, family_id=row.family_id)
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


# --- own profile -------------------------------------------------------------------------------


async def _view(session: AsyncSession, user_id: uuid.UUID) -> UserView:
    view = await repository.get_user_view(session, user_id)
    if view is None:
        raise UserNotFound()
    return view


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> UserView:
    """One user with roles and effective permissions."""
    async with transaction(session):
        return await _view(session, user_id)


async def update_profile(
    session: AsyncSession,
    principal: Principal,
    data: ProfileUpdate,
    if_match: str | None,
    ctx: Context,
) -> UserView:
    """Change one's own full name or email."""
    async with transaction(session):
        user = await repository.get_user(session, principal.id, for_update=True)
        if user is None:
            raise UserNotFound()
        check_if_match(if_match, user.version)
        before = _snapshot(user)
        if data.email is not None and data.email.lower() != user.email:
            if await repository.email_in_use(session, data.email, other_than=user.id):
                raise EmailTaken()
            user.email = data.email.lower()
        if data.full_name is not None:
            user.full_name = data.full_name
        changes = events.compute_changes(before, _snapshot(user), USER_FIELDS)
        if changes:
            await _flush_user(session)
            events.record(session, "user.updated", ctx, entity=("user", user.id), changes=changes)
        view = await _view(session, user.id)
    return view


async def _flush_user(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise EmailTaken() from None


async def change_password(
    session: AsyncSession,
    principal: Principal,
    data: PasswordChange,
    settings: Settings,
    ctx: Context,
    now: datetime,
) -> None:
    """Change one's own password; every refresh token of the user is revoked.

    A wrong current password counts as a failed login, so a stolen access token cannot be used
    to guess the password faster than the login form allows.
    """
    async with transaction(session):
        until = await repository.locked_until(session, principal.email, now)
        user = await repository.get_user(session, principal.id)
        current_hash = user.password_hash if user else None
    if until is not None:
        raise AccountLocked(_seconds_until(until, now))
    if current_hash is None:
        raise UserNotFound()
    ok, _ = await verify_password(data.current_password, current_hash)
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
        raise WrongPassword.at(
            ["body", "current_password"], "the current password is not correct", "wrong_password"
        )
    new_hash = await hash_password(data.new_password)
    async with transaction(session):
        user = await repository.get_user(session, principal.id, for_update=True)
        if user is None:
            raise UserNotFound()
        user.password_hash = new_hash
        revoked = await repository.revoke_user_tokens(session, user.id, now)
        events.record(
            session,
            "user.updated",
            ctx,
            entity=("user", user.id),
            data={"credentials": "changed", "refresh_tokens_revoked": revoked},
        )


# --- user administration -----------------------------------------------------------------------


def _ensure_may_grant(actor: Principal, permissions: Iterable[str]) -> None:
    beyond = set(permissions) - actor.permissions
    if beyond:
        raise GrantBeyondOwnPermissions(
            f"you cannot grant or manage permissions you do not hold: {', '.join(sorted(beyond))}"
        )


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
        _ensure_may_grant(actor, granted)
        user = await _insert_user(
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
        view = await _view(session, user.id)
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
        current = await _view(session, user.id)
        _ensure_may_grant(actor, current.permissions)
        before = _snapshot(user)

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
            _ensure_may_grant(actor, granted)

        deactivating = data.is_active is False and user.is_active
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
        if password_hash is not None or deactivating:
            revoked = await repository.revoke_user_tokens(session, user.id, now)
        # Roles live in another table: touch the user row so its version (the ETag) moves too.
        user.updated_at = now
        await _flush_user(session)

        after = _snapshot(user)
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
        view = await _view(session, user.id)
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
        current = await _view(session, user.id)
        _ensure_may_grant(actor, current.permissions)
        if ADMIN_ROLE in current.roles and (
            await repository.count_active_admins(session, excluding=user.id) == 0
        ):
            raise LastAdmin()
        user.is_active = False
        user.updated_at = now
        revoked = await repository.revoke_user_tokens(session, user.id, now)
        events.record(
            session,
            "user.deactivated",
            ctx,
            entity=("user", user.id),
            changes={"is_active": {"old": True, "new": False}},
            data={"refresh_tokens_revoked": revoked},
        )


# --- roles -------------------------------------------------------------------------------------


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
    _ensure_may_grant(actor, permissions)
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
                _ensure_may_grant(actor, set(new) | set(current.permissions))
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


# --- security events and bootstrap -------------------------------------------------------------


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
            view = await _view(session, user.id)
            user.password_hash = password_hash
            user.is_active = True
            if ADMIN_ROLE not in view.roles:
                session.add(UserRole(user_id=user.id, role_id=admin_role.id))
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
        user = await _insert_user(
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


async def warm_up() -> None:
    """Compute the dummy hash ahead of the first login, so the first unknown email is not
    measurably faster or slower than the rest."""
    await _hash_for_unknown_users()
