"""The request id: taken from a sane client `X-Request-ID`, otherwise generated."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> None:
    _request_id.set(value)


def choose_request_id(client_value: str | None) -> str:
    if client_value and _SANE_REQUEST_ID.match(client_value):
        return client_value
    return uuid.uuid4().hex
