"""Schemathesis hooks for `test_api_fuzzing.py` and `bench/fuzz.py` (`SCHEMATHESIS_HOOKS`).

Schemathesis checks that a request valid by the schema is accepted (`positive_data_acceptance`,
ST202). A few refusals of such requests are the contract itself, and no JSON Schema can say
them: a cursor the server did not sign, `from` after `to`, a reference to a role or category
that does not exist, a wrong current password, CSV rows that do not parse. `contract_acceptance`
runs the built-in check and excuses only those: the problem `code` (and, for a plain
`validation_error`, the field) must be listed for that operation. Every other refusal of valid
data still fails the run. 412 on a stale `If-Match` is allowed in `schemathesis.toml`.
"""

from __future__ import annotations

import string
import uuid
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

_RANGE = {("invalid_filter", None)}
CONTRACT_REFUSALS: dict[str, set[tuple[str, str | None]]] = {
    # HMAC-signed and bound to the filters it was issued for (docs/clients.md, Pagination).
    "GET /api/v1/activity": {("invalid_cursor", None), *_RANGE},
    "GET /api/v1/activity/export": _RANGE,
    # `from` before `to`, and a span each bucket size allows.
    "GET /api/v1/dashboard/activity": _RANGE,
    "GET /api/v1/dashboard/stock-flow": _RANGE,
    "GET /api/v1/dashboard/top-actors": _RANGE,
    "GET /api/v1/reports/sales-summary": {("validation_error", "query.to")},
    "GET /api/v1/reports/purchases-summary": {("validation_error", "query.to")},
    # Role names are data: an unknown one is refused where it is named.
    "POST /api/v1/users": {("validation_error", "body.roles")},
    "PATCH /api/v1/users/{user_id}": {("validation_error", "body.roles")},
    "POST /api/v1/users/me/password": {("wrong_password", None)},
    # A new email needs the current password with it (a stolen access token alone cannot move
    # the account to another address): a rule between two fields.
    "PATCH /api/v1/users/me": {("validation_error", "body")},
    # A parent that does not exist, or one inside the category's own subtree (a cycle).
    "POST /api/v1/categories": {("validation_error", "body.parent_id")},
    "PATCH /api/v1/categories/{category_id}": {("validation_error", "body.parent_id")},
    "POST /api/v1/products/import": {("import_rejected", None)},
    # cost_price above sale_price; a category or supplier that does not exist.
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
    # A product on two lines of one order, or one order line twice in a receipt or a shipment:
    # JSON Schema's uniqueItems cannot compare one field of each item.
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
    # A webhook's URL must reach a public address: one that does not resolve, or that resolves
    # to loopback or a private range, is refused (SSRF guard, docs/webhooks.md).
    "POST /api/v1/webhooks": {("webhook_target_forbidden", None)},
    "PATCH /api/v1/webhooks/{endpoint_id}": {("webhook_target_forbidden", None)},
    # The same warehouse at both ends (TransferCreate's one cross-field rule, and the service's).
    "POST /api/v1/stock-transfers": {
        ("validation_error", "body"),
        ("validation_error", "body.to_warehouse_id"),
    },
}


def _reserved_email_domain(response: Any) -> bool:
    """An email at a special-use or reserved domain (`.test`, `.invalid`, `localhost`, ...) is
    refused wherever an email is taken (email-validator, RFC 6761): no JSON Schema `format`
    says which domains those are."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return False
    return bool(errors) and all(
        str(e["loc"][-1]).endswith("email") and "special-use or reserved" in e["msg"]
        for e in errors
    )


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
        if _reserved_email_domain(response):
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
