"""NUL and other control characters are a 422 wherever text comes in, never a 500."""

from __future__ import annotations

import pytest

from tests.conftest import ClientAs

# At either end too: Python counts "\x1c"-"\x1f", "\x85" and "\r" as whitespace, and a field
# that strips its text must still refuse them rather than drop them silently.
CONTROL = ["a\x00b", "a\x07b", "a\x1bb", "a\rb", "a\x7fb", "a\x85b", "ab\x85", "\x1fab", "ab\r"]


@pytest.mark.parametrize("text", CONTROL)
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/products",
        "/api/v1/categories",
        "/api/v1/suppliers",
        "/api/v1/warehouses",
        "/api/v1/users",
    ],
)
async def test_control_characters_in_a_search_are_422(
    client_as: ClientAs, path: str, text: str
) -> None:
    admin = await client_as("admin")
    response = await admin.get(path, params={"q": text})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


async def test_control_characters_in_a_movement_reference_filter_are_422(
    client_as: ClientAs,
) -> None:
    admin = await client_as("admin")
    response = await admin.get("/api/v1/stock-movements", params={"reference": "r\x00"})
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("text", CONTROL)
async def test_control_characters_in_catalog_names_and_notes_are_422(
    client_as: ClientAs, text: str
) -> None:
    admin = await client_as("admin")
    for path, body in [
        ("/api/v1/categories", {"name": text}),
        ("/api/v1/suppliers", {"name": "Acme", "notes": text}),
        ("/api/v1/warehouses", {"code": "WX1", "name": text}),
        ("/api/v1/products", {"sku": "S-1", "name": text, "sale_price": "1.00"}),
        ("/api/v1/products", {"sku": "S-1", "name": "ok", "unit": text, "sale_price": "1.00"}),
    ]:
        response = await admin.post(path, json=body)
        assert response.status_code == 422, (path, response.text)


async def test_tab_and_newline_are_ordinary_text(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    response = await admin.post(
        "/api/v1/suppliers", json={"name": "Acme", "notes": "line one\n\tline two"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["notes"] == "line one\n\tline two"


async def test_a_lone_surrogate_in_json_is_422(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    response = await admin.post(
        "/api/v1/categories",
        content=b'{"name": "a\\ud800b"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text


async def test_control_characters_in_an_imported_cell_are_a_row_error(
    client_as: ClientAs,
) -> None:
    admin = await client_as("admin")
    csv = "sku,name,sale_price\nS-NUL,bad\x00name,1.00\n"
    response = await admin.post(
        "/api/v1/products/import", files={"file": ("p.csv", csv.encode(), "text/csv")}
    )
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert errors[0]["field"] == "name"
    assert "control characters" in errors[0]["msg"]
