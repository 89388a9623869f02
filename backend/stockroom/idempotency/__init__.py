"""Idempotency keys for unsafe requests: the stored table, its statements and `run_idempotent`.

A key is scoped to (user, route template, key). The first request that carries it claims it *in
the same transaction as its write*: a transaction-scoped advisory lock on the key's hash, then the
write, then one row holding the request's body hash and the response (status and JSON body). So:

- a retry after the first committed finds the row and gets the original status and body back,
  and nothing runs again;
- the same key with a different body (or a different target path) is 422
  `idempotency_key_reused`;
- a retry while the first is still running cannot take the advisory lock: 409
  `idempotency_request_in_progress` (retry it later: it will then replay);
- if the write fails with a client error other than 422, the error response is stored in a
  follow-up transaction so retries get the same answer; 422 and 5xx are not stored (fix and retry).

Rows live at least `settings.idempotency_key_ttl_hours`; older rows are ignored when a key is
claimed again and deleted by `prune_expired` (run opportunistically and by
`stockroom stock prune-idempotency-keys`). The HTTP side (the `Idempotency-Key` header and the
replayed response) is `stockroom.http.idempotency`.
"""

from stockroom.idempotency.keys import (
    IdempotencyKey,
    IdempotencyKeyReused,
    IdempotentRequestInProgress,
    StoredResponse,
    request_fingerprint,
)
from stockroom.idempotency.models import IdempotencyKeyRecord
from stockroom.idempotency.repository import claim_argument, prune_expired
from stockroom.idempotency.service import remember_refusal, run_idempotent

__all__ = [
    "IdempotencyKey",
    "IdempotencyKeyRecord",
    "IdempotencyKeyReused",
    "IdempotentRequestInProgress",
    "StoredResponse",
    "claim_argument",
    "prune_expired",
    "remember_refusal",
    "request_fingerprint",
    "run_idempotent",
]
