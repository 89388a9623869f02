"""Request and response bodies of the auth domain.

Every request model forbids unknown fields: a client sending `roles` or `is_active` where they
are not accepted gets a 422 naming the field, never a silent grant.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)

from stockroom.auth.permissions import Perm
from stockroom.types import SAFE_TEXT, Email

Description = Annotated[str, Field(max_length=1000), SAFE_TEXT]
Password = Annotated[
    str, Field(min_length=8, max_length=128, description="8 to 128 characters"), SAFE_TEXT
]
# A password being checked, not set: any length a real one may have had.
CurrentPassword = Annotated[str, Field(min_length=1, max_length=1024), SAFE_TEXT]
FullName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    SAFE_TEXT,
]
ROLE_NAME_PATTERN = r"^[a-z][a-z0-9_\-]*$"
RoleName = Annotated[
    str, StringConstraints(min_length=2, max_length=64, pattern=ROLE_NAME_PATTERN), SAFE_TEXT
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Input):
    email: Email
    password: Password
    full_name: FullName


class LoginRequest(_Input):
    # Not validated as an email: any string is looked up, and a malformed one simply fails.
    email: Annotated[str, Field(min_length=1, max_length=320), SAFE_TEXT]
    password: CurrentPassword


class RefreshRequest(_Input):
    refresh_token: Annotated[str, Field(min_length=1, max_length=512), SAFE_TEXT]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="access token lifetime in seconds")


class UserRead(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    is_active: bool
    roles: list[str] = Field(description="role names")
    permissions: list[str] = Field(description="effective permissions (union over the roles)")
    created_at: datetime
    updated_at: datetime


def _email_needs_the_password_schema(schema: dict[str, Any]) -> None:
    """`_email_needs_the_password` below, for the OpenAPI document: either no email (absent or
    null), or a current password that is present and not null. Two object shapes under `anyOf`,
    the form schemathesis's generator (hypothesis-jsonschema) honours when it builds valid cases;
    it ignores 2019-09's `dependentRequired`, and the shapes also say "not null", which that
    keyword cannot."""
    schema["anyOf"] = [
        {"properties": {"email": {"type": "null"}}},
        {
            "required": ["current_password"],
            "properties": {"current_password": {"type": "string"}},
        },
    ]


class ProfileUpdate(_Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_email_needs_the_password_schema)

    email: Email | None = Field(default=None, description="needs `current_password` too")
    full_name: FullName | None = None
    current_password: CurrentPassword | None = Field(
        default=None,
        description="required with `email` (422 without it, 403 when wrong): a stolen access "
        "token alone cannot move the account to another address",
    )

    @model_validator(mode="after")
    def _email_needs_the_password(self) -> ProfileUpdate:
        if self.email is not None and self.current_password is None:
            raise ValueError("changing the email needs current_password")
        return self


class PasswordChange(_Input):
    current_password: CurrentPassword
    new_password: Password


class UserCreate(_Input):
    email: Email
    password: Password
    full_name: FullName
    roles: list[RoleName] = Field(default_factory=list, max_length=50)


class UserUpdate(_Input):
    email: Email | None = None
    full_name: FullName | None = None
    is_active: StrictBool | None = None
    roles: list[RoleName] | None = Field(default=None, max_length=50)
    password: Password | None = Field(
        default=None, description="set a new password; revokes the user's refresh tokens"
    )


class RoleRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    is_system: bool
    permissions: list[Perm]
    created_at: datetime
    updated_at: datetime


class RoleCreate(_Input):
    name: RoleName
    description: Description = ""
    permissions: list[Perm] = Field(default_factory=list)


class RoleUpdate(_Input):
    description: Description | None = None
    permissions: list[Perm] | None = None
