"""What the stock routes share: the permission dependencies, the idempotency note, and the
response of a write (fresh or replayed, costs hidden unless costs:read, `Location` on 201)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel

from stockroom.auth.deps import Caller, caller, require
from stockroom.auth.permissions import Perm
from stockroom.context import Principal
from stockroom.http.idempotency import replay_response
from stockroom.idempotency import StoredResponse
from stockroom.redaction import without_costs

JSON = "application/json"

StockReader = Annotated[Principal, Depends(require(Perm.STOCK_READ))]
StockWriter = Annotated[Principal, Depends(require(Perm.STOCK_WRITE))]
StockAdjuster = Annotated[Principal, Depends(require(Perm.STOCK_ADJUST))]
# The hot route's one dependency: session, authentication, stock:write and the context.
StockWriterCaller = Annotated[Caller, caller(Perm.STOCK_WRITE)]

_IDEMPOTENT = (
    " Send an `Idempotency-Key` header to make retries safe: the same key and body replay the "
    "first response (header `Idempotent-Replayed: true`), a different body is 422 "
    "`idempotency_key_reused`, a retry while the first is still running is 409."
)
_COST_NOTE = " `unit_cost` appears only for callers with costs:read."


def _hide_costs(principal: Principal) -> bool:
    return not principal.can(Perm.COSTS_READ)


def _respond(
    result: BaseModel | StoredResponse,
    *,
    status: int,
    principal: Principal,
    collection_path: str | None = None,
    has_costs: bool = False,
) -> Response:
    """The JSON response of a write: fresh or replayed, costs hidden unless costs:read.

    A 201 gets `Location: {collection_path}/{id}`. A fresh result is serialized once, by
    pydantic's compiled serializer straight to bytes (no dict, then json.dumps).
    """
    hide = has_costs and _hide_costs(principal)
    if not isinstance(result, StoredResponse):
        headers: dict[str, str] = {}
        result_id = getattr(result, "id", None)
        if status == 201 and collection_path and result_id is not None:
            headers["Location"] = f"{collection_path}/{result_id}"
        content = result.model_dump_json(exclude={"unit_cost"} if hide else None)
        return Response(content, status_code=status, headers=headers, media_type=JSON)
    body, status = result.body, result.status
    if hide:
        body = without_costs(body)
    headers = {}
    if status == 201 and collection_path and isinstance(body, dict) and "id" in body:
        headers["Location"] = f"{collection_path}/{body['id']}"
    return replay_response(StoredResponse(status, body), headers)


def _collection_of(request: Request, depth: int = 0) -> str:
    """The request's collection path: its path without its last `depth` segments."""
    path = request.url.path.rstrip("/")
    return path.rsplit("/", depth)[0] if depth else path
