"""Body limits are per route, and an upload's caller is authenticated before its body is read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ClientAs
from tests.factories.auth import make_user

CHUNK = 64 * 1024
TWO_MIB = 2 * 1024 * 1024


class Body:
    """A streamed body that counts how much of it the server pulled."""

    def __init__(self, size: int, prefix: bytes = b"") -> None:
        self.size = size
        self.prefix = prefix
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.prefix:
            yield self.prefix
        while self.sent < self.size:
            self.sent += CHUNK
            yield b"x" * CHUNK


async def test_two_mib_to_a_route_without_uploads_is_413_without_reading_it_whole(
    client_as: ClientAs,
) -> None:
    admin = await client_as("admin")
    body = Body(TWO_MIB)
    response = await admin.patch(
        "/api/v1/roles/import", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"
    assert body.sent <= 1024 * 1024 + CHUNK  # stopped at the 1 MiB limit, not at 2 MiB


async def test_a_declared_length_over_the_route_limit_is_refused_before_reading(
    client_as: ClientAs,
) -> None:
    # Ends in /import like the upload route, but is not it: the JSON limit applies.
    admin = await client_as("admin")
    body = Body(TWO_MIB)
    response = await admin.patch(
        "/api/v1/roles/import",
        content=body,
        headers={"Content-Type": "application/json", "Content-Length": str(TWO_MIB)},
    )
    assert response.status_code == 413
    assert body.sent == 0


async def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        body = Body(TWO_MIB, prefix=b"--b\r\n")
        response = await client.post(
            "/api/v1/products/import",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=b", **headers},
        )
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert body.sent == 0


async def test_an_authenticated_upload_may_exceed_the_json_limit(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    rows = "".join(f"BIG-{i:06d},Product {i} {'d' * 40},1.00\n" for i in range(25_000))
    content = ("sku,name,sale_price\n" + rows).encode()
    assert len(content) > TWO_MIB // 2
    response = await manager.post(
        "/api/v1/products/import",
        params={"dry_run": "true"},
        files={"file": ("p.csv", content, "text/csv")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 25_000


async def test_a_deactivated_user_s_upload_is_refused_before_its_body_is_read(
    app: Any, session: AsyncSession
) -> None:
    from tests.conftest import http_client
    from tests.factories.auth import bearer_headers

    user = await make_user(session, roles=["manager"], is_active=False)
    async with http_client(app, await bearer_headers(session, user.id, app.state.settings)) as c:
        body = Body(TWO_MIB, prefix=b"--b\r\n")
        response = await c.post(
            "/api/v1/products/import",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
    assert response.status_code == 401
    assert body.sent == 0
