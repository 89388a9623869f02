"""Schemathesis hooks for `test_api_fuzzing.py` and `bench/fuzz.py` (`SCHEMATHESIS_HOOKS`).

Schemathesis checks that a request valid by the schema is accepted (`positive_data_acceptance`,
ST202). Every rule the document can state is in it, so schemathesis generates only requests
that meet it: `email` only with `current_password` on `PATCH /users/me` (an `anyOf` of two
shapes), no special-use email domain (a pattern), the movement rules per type, sort enums, the
cursor's shape. What is left below is what no JSON Schema can say and CONTRACT.md defines as a
refusal: a comparison between two fields, a reference to data that does not exist, a secret
(a password, a cursor's signature), the content of an upload, where a hostname resolves.
`contract_acceptance` runs the built-in check and excuses only those: the problem `code` (and,
for a plain `validation_error`, the field) must be listed for that operation. Every other refusal
of valid data fails the run. 412 on a stale `If-Match` (Conventions: optimistic concurrency) is
allowed in `schemathesis.toml`, and documented on every operation taking `If-Match`.
"""

from __future__ import annotations

import string
import uuid
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

# `from` not before `to` (two fields), and for the dashboards a window longer than the bucket
# size allows. CONTRACT.md "Activity and dashboards" defines these as `from`/`to` windows (a window
# whose start is not before its end is empty of meaning, not of events); the contract leaves the
# length limit to us (it bounds a dashboard's answer), so the parameters' descriptions state both
# rules and the problem code, where a generated client and schemathesis read them.
_RANGE = {("invalid_filter", None)}
CONTRACT_REFUSALS: dict[str, set[tuple[str, str | None]]] = {
    # The cursor is HMAC-signed and bound to the filters it was issued for: a well-shaped cursor
    # the server did not issue is refused. CONTRACT.md "Activity and dashboards" (`GET
    # /activity`: cursor pagination, the cursor being the server's `next_cursor`);
    # docs/clients.md "Pagination".
    "GET /api/v1/activity": {("invalid_cursor", None), *_RANGE},
    "GET /api/v1/activity/export": _RANGE,
    "GET /api/v1/dashboard/activity": _RANGE,
    "GET /api/v1/dashboard/stock-flow": _RANGE,
    "GET /api/v1/dashboard/top-actors": _RANGE,
    # `to` not after `from`: CONTRACT.md "Reports" (`?from&to`), the same two-field window, stated
    # in the `to` parameter's description.
    "GET /api/v1/reports/sales-summary": {("validation_error", "query.to")},
    "GET /api/v1/reports/purchases-summary": {("validation_error", "query.to")},
    # Role names are data (CONTRACT.md "Roles and permissions": custom roles are created at run
    # time), so no enum can list them: a name no role has is refused where it is given.
    "POST /api/v1/users": {("validation_error", "body.roles")},
    "PATCH /api/v1/users/{user_id}": {("validation_error", "body.roles")},
    # A secret: CONTRACT.md "Auth and users" (`POST /users/me/password` takes the current
    # password; a wrong one is refused).
    "POST /api/v1/users/me/password": {("wrong_password", None)},
    # A parent that does not exist, or one inside the category's own subtree: CONTRACT.md
    # "Catalog" (`/categories`: "tree allowed, cycles 422").
    "POST /api/v1/categories": {("validation_error", "body.parent_id")},
    "PATCH /api/v1/categories/{category_id}": {("validation_error", "body.parent_id")},
    # The CSV's rows: CONTRACT.md "Catalog" (`POST /products/import`: "422 lists row-level
    # errors"); a multipart file's content has no JSON Schema.
    "POST /api/v1/products/import": {("import_rejected", None)},
    # CONTRACT.md "Catalog", product rules: "`cost_price` ≥ 0 and not above `sale_price` (422)"
    # (two fields); a category or supplier that does not exist (data).
    "POST /api/v1/products": {
        ("validation_error", "body.cost_price"),
        ("validation_error", "body.category_id"),
        ("validation_error", "body.supplier_id"),
    },
    "PATCH /api/v1/products/{product_id}": {
        ("validation_error", "body.cost_price"),
        ("validation_error", "body.category_id"),
        ("validation_error", "body.supplier_id"),
    },
    # CONTRACT.md "Purchasing" ("a product at most once per order (422)"; "Sales orders": "same
    # line rules as POs"), and one order line twice in a receipt or a shipment: JSON Schema's
    # `uniqueItems` compares whole items, not one field of each.
    **{
        operation: {("validation_error", "body.lines")}
        for operation in (
            "POST /api/v1/purchase-orders",
            "PATCH /api/v1/purchase-orders/{order_id}",
            "POST /api/v1/purchase-orders/{order_id}/receive",
            "POST /api/v1/sales-orders",
            "PATCH /api/v1/sales-orders/{order_id}",
            "POST /api/v1/sales-orders/{order_id}/ship",
        )
    },
    # Where the URL's host resolves: CONTRACT.md "Webhooks", Security ("targets that resolve to
    # loopback, private, ... are refused, at creation (422)"); docs/webhooks.md.
    "POST /api/v1/webhooks": {("webhook_target_forbidden", None)},
    "PATCH /api/v1/webhooks/{endpoint_id}": {("webhook_target_forbidden", None)},
    # The same warehouse at both ends (two fields): CONTRACT.md "Stock", Transfers ("same
    # warehouse 422").
    "POST /api/v1/stock-transfers": {
        ("validation_error", "body"),
        ("validation_error", "body.to_warehouse_id"),
    },
}


def _refusal(response: Any) -> tuple[str, str | None] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return None
    errors = body.get("errors") or []
    field = ".".join(str(part) for part in errors[0]["loc"]) if errors else None
    return body["code"], field


@schemathesis.check
def contract_acceptance(ctx: Any, response: Any, case: Any) -> bool | None:
    """`positive_data_acceptance`, except the refusals the contract defines (listed above)."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        refusal = _refusal(response)
        allowed = CONTRACT_REFUSALS.get(case.operation.label, set())
        if refusal is not None and (refusal in allowed or (refusal[0], None) in allowed):
            return None
        raise


_KEY_CHARACTERS = set(string.ascii_letters + string.digits + string.punctuation + " ")


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """A fresh `Idempotency-Key` for every request that carries a well-formed one.

    A client sends one key per logical request; the generator repeats values, and the contract
    answers the same key with another body by 422 `idempotency_key_reused`. A malformed key (the
    negative case) is left as generated, to be refused.
    """
    headers = case.headers or {}
    for name, value in headers.items():
        if name.lower() == "idempotency-key" and isinstance(value, str):
            if 1 <= len(value) <= 255 and set(value) <= _KEY_CHARACTERS:
                headers[name] = f"fuzz-{uuid.uuid4()}"
