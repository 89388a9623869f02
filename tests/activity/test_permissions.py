"""Every activity and dashboard route needs `audit:read`: staff gets 403, anonymous 401."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ClientAs

ROUTES = [
    "/api/v1/activity",
    "/api/v1/activity/export?format=ndjson",
    "/api/v1/activity/export?format=csv",
    "/api/v1/dashboard/summary",
    "/api/v1/dashboard/activity",
    "/api/v1/dashboard/stock-flow",
    "/api/v1/dashboard/top-actors",
]


@pytest.mark.parametrize("path", ROUTES)
async def test_staff_is_forbidden(client_as: ClientAs, events: Any, path: str) -> None:
    staff = await client_as("staff")
    response = await staff.get(path)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize("path", ROUTES)
async def test_anonymous_callers_must_authenticate(client: Any, events: Any, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize("role", ["admin", "manager", "analyst"])
async def test_roles_with_audit_read_may_read_everything(
    client_as: ClientAs, events: Any, role: str
) -> None:
    c = await client_as(role)
    for path in ROUTES:
        response = await c.get(path)
        assert response.status_code == 200, (path, response.text)
