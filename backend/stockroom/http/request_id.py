"""The request id: taken from a sane client `X-Request-ID`, otherwise generated."""

from __future__ import annotations

import re
import uuid

from stockroom.context import current_request_id, set_request_id

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def choose_request_id(client_value: str | None) -> str:
    if client_value and _SANE_REQUEST_ID.match(client_value):
        return client_value
    return uuid.uuid4().hex


__all__ = [
    "REQUEST_ID_HEADER",
    "choose_request_id",
    "current_request_id",
    "set_request_id",
]
