"""Request dependencies: the current principal, permission checks and the write context.

Every request loads the user and their effective permissions from the database (one query), so
deactivation and role changes apply on the very next request, not at token expiry. The same
query checks the token's session (its refresh-token family) is live and that the token was
issued after the user's last password change or reactivation: logout, refresh-token reuse, a
password change and deactivation end the access tokens at once.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import Scope

from stockroom.auth import repository
from stockroom.auth.repository import TokenSession, UserView
from stockroom.auth.tokens import InvalidToken, decode_access_token
from stockroom.context import Actor, Context, Principal
from stockroom.db.session import Session, begin_request_transaction
from stockroom.http.errors import PermissionDenied, Unauthorized
from stockroom.http.fastpath import FastRequest
from stockroom.http.middleware import route_template
from stockroom.settings import Settings
from stockroom.types import utcnow

# OAuth2 password flow in the OpenAPI schema, so Swagger UI's "Authorize" logs in through
# /auth/login; on the wire it is a plain `Authorization: Bearer <access token>` header.
_BEARER_SCHEME: dict[str, Any] = {
    "tokenUrl": "/api/v1/auth/login",
    "auto_error": False,
    "description": "an access token from /auth/login (username = email)",
    # The name every route's security requirement refers to, whichever dependency carries it.
    "scheme_name": OAuth2PasswordBearer.__name__,
}
_bearer = OAuth2PasswordBearer(**_BEARER_SCHEME)


# The trivial dependencies below are `async def` on purpose: FastAPI runs a plain `def`
# dependency in the thread pool, and that hand-off cost more than the work itself on every request.


async def get_now(request: Request) -> datetime:
    """The app's clock: `app.state.clock` when set (tests move it), else the real UTC time."""
    clock: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else utcnow()


Now = Annotated[datetime, Depends(get_now)]


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_app_settings)]


def _verified_claims(token: str | None, settings: Settings) -> tuple[uuid.UUID, TokenSession]:
    if not token:
        raise Unauthorized("missing bearer token")
    try:
        claims = decode_access_token(token, settings)
    except InvalidToken:
        raise Unauthorized("invalid or expired token") from None
    return claims.user_id, TokenSession(claims.session_id, claims.issued_at)


def _remember_user(request: HTTPConnection, user_id: uuid.UUID) -> None:
    request.state.user_id = user_id
    request.scope.setdefault("state", {})["user_id"] = user_id


async def _authenticate(
    request: HTTPConnection, session: AsyncSession, claims: tuple[uuid.UUID, TokenSession]
) -> Principal:
    user_id, token_session = claims
    await begin_request_transaction(session)  # the use case commits it (see db.session)
    principal = await repository.load_principal(session, user_id, token_session)
    if principal is None or not principal.is_active:
        raise Unauthorized("invalid or expired token")
    _remember_user(request, principal.id)
    return principal


async def get_current_principal(
    request: Request,
    session: Session,
    settings: AppSettings,
    token: Annotated[str | None, Depends(_bearer)],
) -> Principal:
    return await _authenticate(request, session, _verified_claims(token, settings))


async def _profile(
    request: HTTPConnection, session: AsyncSession, claims: tuple[uuid.UUID, TokenSession]
) -> UserView:
    """The caller's own row, roles and permissions: authentication and `GET /users/me` in one
    query, with exactly the checks of `_authenticate`."""
    user_id, token_session = claims
    await begin_request_transaction(session)  # the use case commits it (see db.session)
    view = await repository.load_profile(session, user_id, token_session)
    if view is None or not view.user.is_active:
        raise Unauthorized("invalid or expired token")
    _remember_user(request, user_id)
    return view


@dataclass(frozen=True, slots=True)
class Caller:
    """What a hot route needs from its caller, built by one dependency (`caller`): the
    authenticated principal, the write context, and the request's session (its transaction
    begun by authentication, for the use case to take over; see db.session)."""

    principal: Principal
    ctx: Context
    session: AsyncSession


class _CallerDependency(OAuth2PasswordBearer):
    """One dependency that opens the request's session, authenticates the bearer token,
    checks the permissions and builds the context: what `Session`, `require(...)`,
    `CurrentUser` and `WriteContext` do as a tree of six dependencies (FastAPI resolves each
    node of a tree on every request, which cost more than the work). It is the bearer scheme
    itself, so the OpenAPI document's security requirement is the same as theirs."""

    def __init__(self, *permissions: str) -> None:
        super().__init__(**_BEARER_SCHEME)
        self.permissions = permissions

    async def __call__(self, request: HTTPConnection) -> AsyncIterator[Caller]:  # type: ignore[override]
        assert isinstance(request, Request)
        # The token first: a request without a good one is refused before a session exists.
        claims = _verified_claims(await super().__call__(request), request.app.state.settings)
        async with request.app.state.sessionmaker() as session:
            principal = await _authenticate(request, session, claims)
            await ensure_permissions(request, session, principal, *self.permissions)
            yield Caller(principal, request_context(request, principal), session)


class _ProfileDependency(OAuth2PasswordBearer):
    """`GET /users/me`'s one dependency: the session, authentication and the caller's profile
    in one query (`_profile`)."""

    def __init__(self) -> None:
        super().__init__(**_BEARER_SCHEME)

    async def __call__(self, request: HTTPConnection) -> AsyncIterator[UserView]:  # type: ignore[override]
        claims = _verified_claims(await super().__call__(request), request.app.state.settings)
        async with request.app.state.sessionmaker() as session:
            yield await _profile(request, session, claims)


def caller(*permissions: str) -> Any:
    """`Annotated[Caller, caller(Perm.X)]`: the one dependency of a hot route (see `Caller`).
    The session lives until the route function returns, as `Session`'s does."""
    return Depends(_CallerDependency(*permissions), scope="function")


async def authenticate_before_body(scope: Scope) -> bool:
    """Whether the request carries a verified access token of a live session of an active
    user. The body-limit middleware asks it before an upload's body is read (FastAPI reads
    the body before it runs dependencies); the route's dependency checks again as usual."""
    headers = Headers(scope=scope)
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    app = scope["app"]
    try:
        claims = decode_access_token(token.strip(), app.state.settings)
    except InvalidToken:
        return False
    token_session = TokenSession(claims.session_id, claims.issued_at)
    async with app.state.sessionmaker() as session, session.begin():
        principal = await repository.load_principal(session, claims.user_id, token_session)
    return principal is not None and principal.is_active


CurrentUser = Annotated[Principal, Depends(get_current_principal)]
CurrentProfile = Annotated[UserView, Depends(_ProfileDependency(), scope="function")]


def request_context(request: HTTPConnection, principal: Principal | None) -> Context:
    client = request.client
    return Context(
        actor=Actor(id=principal.id, email=principal.email) if principal else None,
        request_id=getattr(request.state, "request_id", None),
        ip=client.host if client else None,
        user_agent=request.headers.get("user-agent"),
        method=request.scope["method"],
        path=route_template(request.scope),
    )


async def get_write_context(request: Request, principal: CurrentUser) -> Context:
    return request_context(request, principal)


async def get_anonymous_context(request: Request) -> Context:
    return request_context(request, None)


WriteContext = Annotated[Context, Depends(get_write_context)]
AnonymousContext = Annotated[Context, Depends(get_anonymous_context)]

PermissionDeniedHook = Callable[[Request, Principal, str], Awaitable[None]]


async def ensure_permissions(
    request: Request, session: AsyncSession, principal: Principal, *permissions: str
) -> None:
    """Refuse the request (403, recorded as `auth.permission_denied`) unless the user holds
    every permission. For checks that depend on the request body; routes use `require`."""
    # As plain strings: a 403 names the permission as clients know it (`stock:adjust`), never
    # the repr of an internal enum member.
    missing = [str(p) for p in permissions if not principal.can(p)]
    if not missing:
        return
    # The request ends here: end its transaction before the refusal is recorded in a
    # transaction of its own, so a refused request never holds two connections.
    await session.rollback()
    hook: PermissionDeniedHook | None = getattr(request.app.state, "on_permission_denied", None)
    if hook is not None:
        await hook(request, principal, missing[0])
    raise PermissionDenied(f"this requires the {missing[0]} permission")


def require(*permissions: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets the request through only if the user holds every permission."""

    async def dependency(request: Request, session: Session, principal: CurrentUser) -> Principal:
        await ensure_permissions(request, session, principal, *permissions)
        return principal

    return dependency


# --- fast paths (stockroom.http.fastpath) ------------------------------------------------------
# The same checks as `caller`, for a request served in front of FastAPI's router. Each answers
# None where the dependency would refuse: the fast path then declines and the route refuses.

Claims = tuple[uuid.UUID, TokenSession]


def fast_claims(request: FastRequest) -> Claims | None:
    """The bearer token's verified claims, read as the bearer scheme reads the header."""
    scheme, token = get_authorization_scheme_param(request.header(b"authorization"))
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return _verified_claims(token, request.app.state.settings)
    except Unauthorized:
        return None


async def fast_principal(
    request: FastRequest, connection: asyncpg.Connection, claims: Claims, *permissions: str
) -> Principal | None:
    """The token's user, active, in a live session, holding every permission (re-read on every
    request, so deactivation and role changes apply on the next one); None otherwise."""
    user_id, token_session = claims
    principal = await repository.load_principal(connection, user_id, token_session)
    if principal is None or not principal.is_active:
        return None
    for permission in permissions:
        if not principal.can(permission):
            return None
    request.state["user_id"] = principal.id  # the access log's user, as `_remember_user`
    return principal


def fast_context(request: FastRequest, principal: Principal) -> Context:
    """`request_context` of a fast path's request."""
    return fast_origin(request, Actor(id=principal.id, email=principal.email))


def fast_origin(request: FastRequest, actor: Actor | None = None) -> Context:
    """A fast path's request context with `actor` (none: a statement that reads the principal
    itself fills it in)."""
    scope = request.scope
    client = scope.get("client")
    return Context(
        actor=actor,
        request_id=request.state.get("request_id"),
        ip=client[0] if client else None,
        user_agent=request.header(b"user-agent"),
        method=scope["method"],
        path=request.template,
    )
