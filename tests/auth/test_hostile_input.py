"""Input PostgreSQL cannot store (NUL characters) is a 4xx or a plain miss, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ClientAs

NUL = "a\x00b"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/login-json", {"email": f"{NUL}@example.com", "password": "whatever1"}),
        (
            "/api/v1/auth/register",
            {"email": "n@example.com", "password": "x" * 8, "full_name": NUL},
        ),
        ("/api/v1/auth/refresh", {"refresh_token": NUL}),
    ],
)
async def test_nul_characters_in_anonymous_bodies(
    client: httpx.AsyncClient, path: str, body: dict[str, str]
) -> None:
    response = await client.post(path, json=body)
    assert 400 <= response.status_code < 500, response.text


async def test_nul_characters_in_the_login_form(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login", data={"username": NUL, "password": "whatever1"}
    )
    assert response.status_code in {401, 422}


async def test_nul_characters_in_admin_input(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    for response in (
        await admin.get("/api/v1/users", params={"q": NUL}),
        await admin.get("/api/v1/users", params={"role": NUL}),
        await admin.get("/api/v1/roles/a%00b"),
        await admin.patch("/api/v1/roles/a%00b", json={"description": "x"}),
        await admin.post("/api/v1/roles", json={"name": "ok-name", "description": NUL}),
        await admin.patch("/api/v1/users/me", json={"full_name": NUL}),
        await admin.post(
            "/api/v1/users",
            json={"email": "z@example.com", "password": "x" * 8, "full_name": NUL},
        ),
    ):
        assert 400 <= response.status_code < 500, response.text
