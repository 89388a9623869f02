"""HTTP routes of the auth domain: /auth, /users and /roles."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from stockroom.auth import service
from stockroom.auth.deps import (
    AnonymousContext,
    AppSettings,
    CurrentProfile,
    CurrentUser,
    Now,
    WriteContext,
    require,
)
from stockroom.auth.permissions import Perm
from stockroom.auth.repository import RoleView, UserView
from stockroom.auth.schemas import (
    ROLE_NAME_PATTERN,
    LoginRequest,
    PasswordChange,
    ProfileUpdate,
    RefreshRequest,
    RegisterRequest,
    RoleCreate,
    RoleRead,
    RoleUpdate,
    TokenPair,
    UserCreate,
    UserRead,
    UserUpdate,
)
from stockroom.context import Principal
from stockroom.db.session import Session
from stockroom.http.errors import problem_responses
from stockroom.http.etag import IfMatch, set_etag
from stockroom.http.location import location
from stockroom.http.pagination import Page, Pagination, Sort, sort_param
from stockroom.types import SafeText

router = APIRouter()
auth_router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"])
roles_router = APIRouter(prefix="/roles", tags=["roles"])

ReadUsers = Annotated[Principal, Depends(require(Perm.USERS_READ))]
WriteUsers = Annotated[Principal, Depends(require(Perm.USERS_WRITE))]
UserSort = Annotated[Sort, Depends(sort_param(["email", "full_name", "created_at"], "email"))]
RoleSort = Annotated[Sort, Depends(sort_param(["name", "created_at"], "name"))]
RoleNameParam = Annotated[
    str, Path(min_length=2, max_length=64, pattern=ROLE_NAME_PATTERN, description="role name")
]


def user_read(view: UserView) -> UserRead:
    user = view.user
    return UserRead(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        is_active=user.is_active,
        roles=view.roles,
        permissions=view.permissions,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


def _user_response(view: UserView, response: Response) -> UserRead:
    set_etag(response, view.user.version)
    return user_read(view)


def _role_read(view: RoleView) -> RoleRead:
    role = view.role
    return RoleRead(
        id=role.id,
        name=role.name,
        description=role.description,
        is_system=role.is_system,
        permissions=view.permissions,
        created_at=role.created_at,
        updated_at=role.updated_at,
    )


# --- /auth -------------------------------------------------------------------------------------


def _no_store(response: Response) -> None:
    # RFC 6749 5.1: no cache (browser, proxy) may keep a response that holds tokens.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


@auth_router.post(
    "/register",
    status_code=201,
    response_model=UserRead,
    responses=problem_responses(403, 409, 422),
)
async def register(
    data: RegisterRequest,
    request: Request,
    response: Response,
    session: Session,
    settings: AppSettings,
    ctx: AnonymousContext,
) -> UserRead:
    """Register a new account (no roles); 403 when registration is disabled."""
    view = await service.register(session, data, settings, ctx)
    response.headers["Location"] = location(request, "get_user", user_id=view.user.id)
    return _user_response(view, response)


@auth_router.post(
    "/login",
    status_code=200,
    response_model=TokenPair,
    responses=problem_responses(401, 422, 429),
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: Session,
    settings: AppSettings,
    ctx: AnonymousContext,
    now: Now,
    response: Response,
) -> TokenPair:
    """Log in with the OAuth2 password form (`username` = email) and get a token pair."""
    _no_store(response)
    return await service.login(session, form.username, form.password, settings, ctx, now)


@auth_router.post(
    "/login-json",
    status_code=200,
    response_model=TokenPair,
    responses=problem_responses(401, 422, 429),
)
async def login_json(
    data: LoginRequest,
    session: Session,
    settings: AppSettings,
    ctx: AnonymousContext,
    now: Now,
    response: Response,
) -> TokenPair:
    """Log in with a JSON body `{email, password}` and get a token pair."""
    _no_store(response)
    return await service.login(session, data.email, data.password, settings, ctx, now)


@auth_router.post(
    "/refresh",
    status_code=200,
    response_model=TokenPair,
    responses=problem_responses(401, 422),
)
async def refresh(
    data: RefreshRequest,
    session: Session,
    settings: AppSettings,
    ctx: AnonymousContext,
    now: Now,
    response: Response,
) -> TokenPair:
    """Exchange a refresh token for a new pair; a reused token revokes its whole family."""
    _no_store(response)
    return await service.refresh(session, data.refresh_token, settings, ctx, now)


@auth_router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 422),
)
async def logout(
    data: RefreshRequest, session: Session, principal: CurrentUser, ctx: WriteContext, now: Now
) -> Response:
    """Log out: the refresh token's family is revoked."""
    await service.logout(session, data.refresh_token, principal, ctx, now)
    return Response(status_code=204)


# --- /users ------------------------------------------------------------------------------------


@users_router.get("/me", response_model=UserRead, responses=problem_responses(401))
async def get_me(profile: CurrentProfile, response: Response) -> UserRead:
    """Your own profile, roles and effective permissions."""
    return _user_response(profile, response)


@users_router.patch(
    "/me", response_model=UserRead, responses=problem_responses(401, 403, 409, 412, 422, 429)
)
async def update_me(
    data: ProfileUpdate,
    principal: CurrentUser,
    session: Session,
    settings: AppSettings,
    ctx: WriteContext,
    now: Now,
    response: Response,
    if_match: IfMatch = None,
) -> UserRead:
    """Change your own full name, or email together with `current_password`."""
    view = await service.update_profile(session, principal, data, if_match, settings, ctx, now)
    return _user_response(view, response)


@users_router.post(
    "/me/password",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 422, 429),
)
async def change_password(
    data: PasswordChange,
    principal: CurrentUser,
    session: Session,
    settings: AppSettings,
    ctx: WriteContext,
    now: Now,
) -> Response:
    """Change your password; all your refresh tokens are revoked."""
    await service.change_password(session, principal, data, settings, ctx, now)
    return Response(status_code=204)


@users_router.get("", response_model=Page[UserRead], responses=problem_responses(401, 403, 422))
async def list_users(
    _: ReadUsers,
    session: Session,
    pagination: Pagination,
    sort: UserSort,
    q: Annotated[
        SafeText | None,
        Query(
            max_length=200,
            description="case-insensitive substring of email or full name",
        ),
    ] = None,
    is_active: Annotated[bool | None, Query(description="only active or inactive users")] = None,
    role: Annotated[
        str | None,
        Query(
            min_length=2,
            max_length=64,
            pattern=ROLE_NAME_PATTERN,
            description="users holding this role",
        ),
    ] = None,
) -> Page[UserRead]:
    """List users (users:read)."""
    views, total = await service.list_users(
        session,
        q=q,
        is_active=is_active,
        role=role,
        sort_field=sort.field,
        descending=sort.descending,
        offset=pagination.offset,
        limit=pagination.limit,
    )
    return Page[UserRead].of([user_read(v) for v in views], total, pagination)


@users_router.post(
    "",
    status_code=201,
    response_model=UserRead,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_user(
    data: UserCreate,
    actor: WriteUsers,
    session: Session,
    ctx: WriteContext,
    request: Request,
    response: Response,
) -> UserRead:
    """Create a user with roles (users:write)."""
    view = await service.create_user(session, data, actor, ctx)
    response.headers["Location"] = location(request, "get_user", user_id=view.user.id)
    return _user_response(view, response)


@users_router.get(
    "/{user_id:uuid}", response_model=UserRead, responses=problem_responses(401, 403, 404, 422)
)
async def get_user(
    user_id: uuid.UUID, _: ReadUsers, session: Session, response: Response
) -> UserRead:
    """One user (users:read)."""
    return _user_response(await service.get_user(session, user_id), response)


@users_router.patch(
    "/{user_id:uuid}",
    response_model=UserRead,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_user(
    user_id: uuid.UUID,
    data: UserUpdate,
    actor: WriteUsers,
    session: Session,
    ctx: WriteContext,
    now: Now,
    response: Response,
    if_match: IfMatch = None,
) -> UserRead:
    """Change a user's profile, status, roles or password (users:write)."""
    view = await service.update_user(session, user_id, data, if_match, actor, ctx, now)
    return _user_response(view, response)


@users_router.delete(
    "/{user_id:uuid}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def deactivate_user(
    user_id: uuid.UUID,
    actor: WriteUsers,
    session: Session,
    ctx: WriteContext,
    now: Now,
    if_match: IfMatch = None,
) -> Response:
    """Deactivate a user (users:write): logins and existing tokens stop working at once."""
    await service.deactivate_user(session, user_id, if_match, actor, ctx, now)
    return Response(status_code=204)


# --- /roles ------------------------------------------------------------------------------------


@roles_router.get("", response_model=Page[RoleRead], responses=problem_responses(401, 403, 422))
async def list_roles(
    _: ReadUsers, session: Session, pagination: Pagination, sort: RoleSort
) -> Page[RoleRead]:
    """List roles with their permissions (users:read)."""
    views, total = await service.list_roles(
        session,
        sort_field=sort.field,
        descending=sort.descending,
        offset=pagination.offset,
        limit=pagination.limit,
    )
    return Page[RoleRead].of([_role_read(v) for v in views], total, pagination)


@roles_router.post(
    "",
    status_code=201,
    response_model=RoleRead,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_role(
    data: RoleCreate,
    actor: WriteUsers,
    session: Session,
    ctx: WriteContext,
    request: Request,
    response: Response,
) -> RoleRead:
    """Create a custom role from the permission set (users:write)."""
    view = await service.create_role(session, data, actor, ctx)
    response.headers["Location"] = location(request, "get_role", name=view.role.name)
    return _role_read(view)


@roles_router.get(
    "/{name}", response_model=RoleRead, responses=problem_responses(401, 403, 404, 422)
)
async def get_role(name: RoleNameParam, _: ReadUsers, session: Session) -> RoleRead:
    """One role with its permissions (users:read)."""
    return _role_read(await service.get_role(session, name))


@roles_router.patch(
    "/{name}",
    response_model=RoleRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def update_role(
    name: RoleNameParam, data: RoleUpdate, actor: WriteUsers, session: Session, ctx: WriteContext
) -> RoleRead:
    """Change a role's description or a custom role's permissions (users:write)."""
    return _role_read(await service.update_role(session, name, data, actor, ctx))


router.include_router(auth_router)
router.include_router(users_router)
router.include_router(roles_router)

__all__ = ["router"]
