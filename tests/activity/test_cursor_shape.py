"""The activity cursor: its shape is in the OpenAPI document, and issued cursors have it."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.activity.conftest import event
from tests.conftest import ClientAs
from tests.http.test_problems import assert_problem


async def test_the_cursor_shape_is_documented_and_issued_cursors_have_it(
    client: httpx.AsyncClient, client_as: ClientAs, events: Any
) -> None:
    openapi = (await client.get("/openapi.json")).json()
    operation = openapi["paths"]["/api/v1/activity"]["get"]
    cursor = next(p for p in operation["parameters"] if p["name"] == "cursor")
    pattern = cursor["schema"]["pattern"]
    page = openapi["components"]["schemas"]["ActivityPage"]["properties"]["next_cursor"]
    assert page["pattern"] == pattern
    await events.insert_many(
        [event("product.updated", f"2026-03-01T10:00:{s:02d}") for s in range(3)]
    )
    analyst = await client_as("analyst")
    first = (await analyst.get("/api/v1/activity", params={"limit": 1})).json()
    assert re.fullmatch(pattern.strip("^$"), first["next_cursor"])
    # A string of the documented shape that the server did not issue is refused by its code.
    forged = "e30." + "A" * 22
    assert re.fullmatch(pattern.strip("^$"), forged)
    response = await analyst.get("/api/v1/activity", params={"cursor": forged})
    assert_problem(response, 422, "invalid_cursor")
