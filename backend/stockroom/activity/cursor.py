"""Opaque, tamper-checked keyset cursors for the activity log.

A cursor is the sort key of the last item a client saw, `(occurred_at, _id)`, plus a digest of the
filters it was issued for, signed with HMAC-SHA256 under the app's secret key. Clients cannot forge
a position, replay a cursor against other filters, or learn anything they could not already see.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from stockroom.activity.errors import InvalidCursor

_VERSION = 1
_MAC_BYTES = 16
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$"
"""A cursor's shape, as the OpenAPI document states it: unpadded base64url of the payload, a dot,
then of the 16-byte MAC. A string of that shape can still be refused (`invalid_cursor`): only
the server can tell a cursor it issued, for these filters."""
_SHAPE = re.compile(CURSOR_PATTERN)


@dataclass(frozen=True, slots=True)
class SortKey:
    """A position in newest-first order: events strictly older than this come next."""

    occurred_at: datetime
    id: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret_key: str, payload: bytes) -> bytes:
    key = hashlib.sha256(b"stockroom.activity.cursor:" + secret_key.encode()).digest()
    return hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_cursor(key: SortKey, filters_digest: str, secret_key: str) -> str:
    millis = int(key.occurred_at.timestamp() * 1000)
    payload = json.dumps(
        {"v": _VERSION, "t": millis, "id": key.id, "f": filters_digest}, separators=(",", ":")
    ).encode()
    return f"{_b64(payload)}.{_b64(_mac(secret_key, payload))}"


def decode_cursor(cursor: str, filters_digest: str, secret_key: str) -> SortKey:
    """The position a cursor stands for; `InvalidCursor` (422) if it is not exactly one we made
    for these filters."""
    if not _SHAPE.fullmatch(cursor):  # exactly the documented shape, "" and padding refused
        raise InvalidCursor()
    try:
        payload_text, mac_text = cursor.split(".")
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, binascii.Error):
        raise InvalidCursor() from None
    if not hmac.compare_digest(mac, _mac(secret_key, payload)):
        raise InvalidCursor()
    try:
        fields = json.loads(payload)
        if fields["v"] != _VERSION or not isinstance(fields["id"], str):
            raise InvalidCursor()
        occurred_at = datetime.fromtimestamp(int(fields["t"]) / 1000, tz=UTC)
    except (ValueError, KeyError, TypeError, OverflowError):
        raise InvalidCursor() from None
    if fields["f"] != filters_digest:
        raise InvalidCursor("this cursor was issued for other filters; start again without it")
    return SortKey(occurred_at=occurred_at, id=fields["id"])
