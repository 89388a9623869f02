"""A request's claim on a key, the response replayed for it, and the two refusals."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from stockroom.problems import Conflict, ValidationFailed


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"
    default_detail = "this Idempotency-Key was already used with a different request"


class IdempotentRequestInProgress(Conflict):
    code = "idempotency_request_in_progress"
    default_detail = "a request with this Idempotency-Key is still being processed; retry later"


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """One request's claim: whose key, on which route, and what the request was."""

    user_id: uuid.UUID
    route: str
    key: str
    request_hash: str
    ttl: timedelta

    @property
    def lock_id(self) -> int:
        digest = hashlib.sha256(f"{self.user_id}\x00{self.route}\x00{self.key}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response replayed from an earlier request with the same key (rendered by
    `stockroom.http.idempotency.replay_response`)."""

    status: int
    body: Any


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """A hash of what the request asks for: method, concrete path and the JSON body's content.

    JSON is canonicalized, so key order and whitespace do not make two equal bodies different.
    """
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    material = f"{method}\x00{path}\x00{canonical}"
    return hashlib.sha256(material.encode()).hexdigest()
