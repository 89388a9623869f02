"""Every order, reorder and purchases-report route refuses each seeded role that lacks its
permission with 403 naming that permission, and nothing is written."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.purchasing.models import PurchaseOrder
from stockroom.sales.models import SalesOrder
from tests.conftest import ClientAs
from tests.stock.test_movements import assert_problem

ANY = str(uuid.UUID(int=1))
PO_BODY = {"supplier_id": ANY, "warehouse_id": ANY, "lines": [{"product_id": ANY, "quantity": 1}]}
SO_BODY = {
    "warehouse_id": ANY,
    "customer": {"name": "A"},
    "lines": [{"product_id": ANY, "quantity": 1}],
}
LINES = {"lines": [{"line_id": ANY, "quantity": 1}]}

# (method, path, body, permission)
ROUTES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/api/v1/purchase-orders", None, "purchasing:read"),
    ("GET", f"/api/v1/purchase-orders/{ANY}", None, "purchasing:read"),
    ("POST", "/api/v1/purchase-orders", PO_BODY, "purchasing:write"),
    ("PATCH", f"/api/v1/purchase-orders/{ANY}", {"note": "x"}, "purchasing:write"),
    ("POST", f"/api/v1/purchase-orders/{ANY}/submit", None, "purchasing:write"),
    ("POST", f"/api/v1/purchase-orders/{ANY}/receive", LINES, "purchasing:write"),
    ("POST", f"/api/v1/purchase-orders/{ANY}/cancel", None, "purchasing:write"),
    ("GET", "/api/v1/reorder-suggestions", None, "purchasing:read"),
    ("POST", "/api/v1/reorder-suggestions/purchase-orders", {}, "purchasing:write"),
    ("GET", "/api/v1/sales-orders", None, "sales:read"),
    ("GET", f"/api/v1/sales-orders/{ANY}", None, "sales:read"),
    ("POST", "/api/v1/sales-orders", SO_BODY, "sales:write"),
    ("PATCH", f"/api/v1/sales-orders/{ANY}", {"note": "x"}, "sales:write"),
    ("POST", f"/api/v1/sales-orders/{ANY}/confirm", None, "sales:write"),
    ("POST", f"/api/v1/sales-orders/{ANY}/ship", LINES, "sales:write"),
    ("POST", f"/api/v1/sales-orders/{ANY}/cancel", None, "sales:write"),
    ("GET", "/api/v1/reports/purchases-summary", None, "reports:read"),
]

# The seeded grants of CONTRACT.md's role table, for the permissions above.
GRANTS = {
    "manager": {"purchasing:read", "purchasing:write", "sales:read", "sales:write", "reports:read"},
    "staff": {"purchasing:read", "sales:read", "sales:write"},
    "analyst": {"purchasing:read", "sales:read", "reports:read"},
    "": set(),  # a user with no role
}

REFUSALS = [
    pytest.param(role, method, path, body, permission, id=f"{role or 'no-role'} {method} {path}")
    for role, granted in GRANTS.items()
    for method, path, body, permission in ROUTES
    if permission not in granted
]


@pytest.mark.parametrize(("role", "method", "path", "body", "permission"), REFUSALS)
async def test_a_role_without_the_permission_is_refused_by_name(
    client_as: ClientAs,
    session: AsyncSession,
    role: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    permission: str,
) -> None:
    c = await client_as(*([role] if role else []))

    response = await c.request(method, path, json=body)

    problem = assert_problem(response, 403, "permission_denied")
    assert permission in problem["detail"]
    assert await session.scalar(select(func.count()).select_from(PurchaseOrder)) == 0
    assert await session.scalar(select(func.count()).select_from(SalesOrder)) == 0


def test_every_refusal_of_the_role_table_is_covered() -> None:
    # 17 routes; staff lacks 6 purchasing:write + reports:read, analyst lacks 6 + 5 writes,
    # the no-role user lacks all 17, the manager none.
    assert len(REFUSALS) == 7 + 11 + 17
