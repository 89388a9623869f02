"""Who did what, from where: carried into every use case and every activity event."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


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
