"""Who did what, from where: carried into every use case and every activity event.

The bottom layer, so that `events`, every service and every router may use it without importing
`http` or `auth`.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass

# The id of the request being handled (set by the request middleware), for problem documents
# and logs; None outside a request.
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> None:
    _request_id.set(value)


@dataclass(frozen=True, slots=True)
class Actor:
    id: uuid.UUID
    email: str


@dataclass(frozen=True, slots=True)
class Context:
    actor: Actor | None = None
    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    method: str | None = None
    path: str | None = None

    @classmethod
    def system(cls, request_id: str | None = None) -> Context:
        """The context of work not caused by a user request (CLI, migrations, relay)."""
        return cls(request_id=request_id)


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
