"""Errors of the auth domain, rendered as problem details by the app's one handler."""

from __future__ import annotations

from stockroom.http.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    default_detail = "incorrect email or password"


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    default_detail = "the refresh token is invalid, expired or revoked"


class AccountLocked(TooManyRequests):
    code = "account_locked"
    default_detail = "too many failed logins for this account; retry later"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many failed logins for this account; retry in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )


class RegistrationClosed(PermissionDenied):
    code = "registration_closed"
    default_detail = "self-registration is disabled on this server"


class EmailTaken(Conflict):
    code = "email_taken"
    default_detail = "a user with this email already exists"


class RoleExists(Conflict):
    code = "role_exists"
    default_detail = "a role with this name already exists"


class SystemRoleImmutable(Conflict):
    code = "system_role_immutable"
    default_detail = "the permissions of a seeded role cannot be changed"


class LastAdmin(Conflict):
    code = "last_admin"
    default_detail = "this would leave no active administrator"


class UserNotFound(NotFound):
    default_detail = "user not found"


class RoleNotFound(NotFound):
    default_detail = "role not found"


class WrongPassword(ValidationFailed):
    code = "wrong_password"


class WrongCurrentPassword(PermissionDenied):
    """A change that needs the current password (the email) came with a wrong one."""

    code = "wrong_password"
    default_detail = "the current password is not correct"


class GrantBeyondOwnPermissions(PermissionDenied):
    code = "permission_denied"
    default_detail = "you cannot grant permissions you do not hold yourself"


def unknown_roles(names: set[str], loc: list[str | int]) -> ValidationFailed:
    return ValidationFailed.at(loc, f"unknown roles: {', '.join(sorted(names))}", "unknown_role")
