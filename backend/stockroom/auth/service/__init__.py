"""Use cases of the auth domain, one module per concern, re-exported here so callers keep writing
`from stockroom.auth import service` and `service.login(...)`.

Each public function owns its transaction (or, in an authenticated request, takes over the one
the auth dependency began).
"""

from stockroom.auth.service._shared import ADMIN_ROLE, USER_FIELDS
from stockroom.auth.service.bootstrap import (
    AdminResult,
    ensure_admin,
    generate_password,
    has_active_admin,
    record_permission_denied,
)
from stockroom.auth.service.profile import change_password, get_user, update_profile
from stockroom.auth.service.roles import create_role, get_role, list_roles, update_role
from stockroom.auth.service.sessions import login, logout, refresh, register, warm_up
from stockroom.auth.service.users import create_user, deactivate_user, list_users, update_user

__all__ = [
    "ADMIN_ROLE",
    "USER_FIELDS",
    "AdminResult",
    "change_password",
    "create_role",
    "create_user",
    "deactivate_user",
    "ensure_admin",
    "generate_password",
    "get_role",
    "get_user",
    "has_active_admin",
    "list_roles",
    "list_users",
    "login",
    "logout",
    "record_permission_denied",
    "refresh",
    "register",
    "update_profile",
    "update_role",
    "update_user",
    "warm_up",
]
