"""The routes `catalog.simple_routes` registers for categories, suppliers and warehouses: each
names its path parameter after its entity, in the URL and in the 422 a bad id gets."""

from __future__ import annotations

import pytest

from tests.conftest import ClientAs


@pytest.mark.parametrize(
    ("plural", "entity"),
    [("categories", "category"), ("suppliers", "supplier"), ("warehouses", "warehouse")],
)
async def test_a_bad_id_is_a_422_at_the_entitys_path_parameter(
    client_as: ClientAs, plural: str, entity: str
) -> None:
    manager = await client_as("manager")
    url = f"/api/v1/{plural}/not-a-uuid"
    for response in (
        await manager.get(url),
        await manager.patch(url, json={"name": "x"}, headers={"If-Match": '"1"'}),
        await manager.delete(url, headers={"If-Match": '"1"'}),
    ):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["loc"] for e in response.json()["errors"]] == [["path", f"{entity}_id"]]
