from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog import importer
from stockroom.catalog.models import Product
from stockroom.events.models import OutboxEvent
from tests.conftest import ClientAs
from tests.factories.catalog import make_category, make_product, make_supplier


def csv_file(rows: list[dict[str, str]], header: list[str] | None = None) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header or list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


async def upload(c: httpx.AsyncClient, content: bytes, *, dry_run: bool = False) -> httpx.Response:
    return await c.post(
        "/api/v1/products/import",
        params={"dry_run": "true"} if dry_run else {},
        files={"file": ("products.csv", content, "text/csv")},
    )


async def count_products(session: AsyncSession, prefix: str) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Product).where(Product.sku.like(f"{prefix}%"))
        )
        or 0
    )


async def count_events(session: AsyncSession, type_: str) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == type_)
        )
        or 0
    )


def rows_for(prefix: str, n: int, category: str = "", supplier: str = "") -> list[dict[str, str]]:
    return [
        {
            "sku": f"{prefix}{i:03d}",
            "name": f"Imported {i}",
            "category": category,
            "supplier": supplier,
            "cost_price": "2.50",
            "sale_price": "5.00",
            "reorder_point": "4",
        }
        for i in range(n)
    ]


async def test_import_creates_products_by_name_references(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    prefix = f"IMP{uuid.uuid4().hex[:6].upper()}-"
    category = await make_category(session, name=f"Cat {prefix}")
    supplier = await make_supplier(session, name=f"Sup {prefix}")
    content = csv_file(rows_for(prefix, 25, category.name.upper(), supplier.name))
    response = await upload(manager, content)
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 25, "updated": 0, "unchanged": 0, "dry_run": False}
    assert await count_products(session, prefix) == 25
    product = await session.scalar(select(Product).where(Product.sku == f"{prefix}007"))
    assert product is not None
    assert product.category_id == category.id
    assert product.supplier_id == supplier.id
    assert str(product.cost_price) == "2.50"
    assert product.reorder_point == 4
    imported = list(
        await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "product.imported"))
    )
    assert len(imported) == 1
    assert imported[0].payload["data"] == {"created": 25, "updated": 0, "unchanged": 0, "rows": 25}
    created = await session.scalar(
        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == "product.created")
    )
    assert created == 0


async def test_dry_run_changes_nothing(client_as: ClientAs, session: AsyncSession) -> None:
    manager = await client_as("manager")
    prefix = f"DRY{uuid.uuid4().hex[:6].upper()}-"
    response = await upload(manager, csv_file(rows_for(prefix, 10)), dry_run=True)
    assert response.status_code == 200
    assert response.json() == {"created": 10, "updated": 0, "unchanged": 0, "dry_run": True}
    assert await count_products(session, prefix) == 0


async def test_reimport_reports_unchanged_then_updated_without_duplicates(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    prefix = f"RE{uuid.uuid4().hex[:6].upper()}-"
    rows = rows_for(prefix, 12)
    assert (await upload(manager, csv_file(rows))).json()["created"] == 12
    again = await upload(manager, csv_file(rows))
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 12, "dry_run": False}
    for row in rows[:5]:
        row["sale_price"] = "6.00"
        row["sku"] = row["sku"].lower()  # upsert matches sku case-insensitively
    changed = await upload(manager, csv_file(rows))
    assert changed.json() == {"created": 0, "updated": 5, "unchanged": 7, "dry_run": False}
    assert (
        await count_products(session, prefix) + await count_products(session, prefix.lower()) == 12
    )


async def test_one_bad_row_changes_nothing_and_is_reported(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    prefix = f"BAD{uuid.uuid4().hex[:6].upper()}-"
    existing = await make_product(session, sku=f"{prefix}000", name="Before")
    rows = rows_for(prefix, 20)
    rows[0]["name"] = "After"
    rows[13]["sale_price"] = "abc"  # spreadsheet row 15 (the header is row 1)
    rows[16]["cost_price"] = "9.00"  # above the sale price
    rows[17]["category"] = "No such category anywhere"
    response = await upload(manager, csv_file(rows))
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "import_rejected"
    assert [(e["row"], e["field"]) for e in body["errors"]] == [
        (15, "sale_price"),
        (18, "cost_price"),
        (19, "category"),
    ]
    assert all(e["msg"] for e in body["errors"])
    assert await count_products(session, prefix) == 1
    await session.refresh(existing)
    assert existing.name == "Before"


async def test_duplicates_within_the_file_and_missing_columns_are_422(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    prefix = f"DUP{uuid.uuid4().hex[:6].upper()}-"
    rows = rows_for(prefix, 3)
    rows[2]["sku"] = rows[0]["sku"].lower()
    duplicate = await upload(manager, csv_file(rows))
    assert duplicate.status_code == 422
    assert [(e["row"], e["field"]) for e in duplicate.json()["errors"]] == [(4, "sku")]
    missing = await upload(manager, b"sku,name\nA-1,Thing\n")
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "sale_price"
    taken = await make_product(session, barcode=f"BC{prefix}")
    clash = await upload(
        manager,
        csv_file(
            [
                {
                    "sku": f"{prefix}X",
                    "name": "x",
                    "sale_price": "1.00",
                    "barcode": taken.barcode or "",
                }
            ]
        ),
    )
    assert clash.status_code == 422
    assert clash.json()["errors"][0]["field"] == "barcode"
    not_utf8 = await upload(manager, "sku,name,sale_price\nA,Caf\u00e9,1.00\n".encode("latin-1"))
    assert not_utf8.status_code == 422


async def test_import_is_forbidden_without_catalog_write(client_as: ClientAs) -> None:
    for role in ("staff", "analyst"):
        c = await client_as(role)
        assert (await upload(c, csv_file(rows_for("X-", 1)))).status_code == 403


async def test_export_uses_the_list_filters_and_round_trips(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    root = await make_category(session, name=f"Export root {uuid.uuid4().hex[:6]}")
    child = await make_category(session, parent=root)
    supplier = await make_supplier(session)
    in_child = await make_product(
        session, category_id=child.id, supplier_id=supplier.id, description='has "quotes", commas'
    )
    in_root = await make_product(session, category_id=root.id)
    await make_product(session)
    response = await manager.get(
        "/api/v1/products/export", params={"category_id": str(root.id), "sort": "sku"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(r["sku"] for r in rows) == sorted([in_child.sku, in_root.sku])
    exported = next(r for r in rows if r["sku"] == in_child.sku)
    assert exported["category"] == child.name
    assert exported["supplier"] == supplier.name
    assert exported["cost_price"] == "4.00"
    assert exported["margin"] == "6.00"
    assert exported["description"] == 'has "quotes", commas'
    # Category names are unique only among siblings; this child's name is unique here.
    again = await upload(manager, response.content)
    assert again.status_code == 200, again.text
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 2, "dry_run": False}


async def test_export_search_matches_the_product_not_its_category_or_supplier(
    client_as: ClientAs, session: AsyncSession
) -> None:
    # The export joins categories and suppliers, which have names and descriptions of their own:
    # `q` still searches the product's name, sku, description and barcode only.
    manager = await client_as("manager")
    tag = uuid.uuid4().hex[:6]
    category = await make_category(session, name=f"Category {tag}")
    supplier = await make_supplier(session, name=f"Supplier {tag}")
    await make_product(session, category_id=category.id, supplier_id=supplier.id)
    described = await make_product(session, description=f"fits {tag.upper()} frames")
    response = await manager.get("/api/v1/products/export", params={"q": tag})
    assert response.status_code == 200, response.text
    assert [r["sku"] for r in csv.DictReader(io.StringIO(response.text))] == [described.sku]


async def test_export_is_forbidden_without_catalog_read(client_as: ClientAs) -> None:
    nobody = await client_as()
    assert (await nobody.get("/api/v1/products/export")).status_code == 403


async def test_a_sku_that_appears_during_the_import_is_409_and_nothing_is_written(
    client_as: ClientAs, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if another request created the product between the importer's check of a batch and its
    # write: the check sees no existing product, the database's unique index refuses the row.
    manager = await client_as("manager")
    prefix = f"RACE{uuid.uuid4().hex[:6].upper()}-"
    await make_product(session, sku=f"{prefix}003", name="Created meanwhile")
    blind = str(importer._EXISTING.text).replace("WHERE", "WHERE false AND")
    monkeypatch.setattr(importer, "_EXISTING", text(blind))
    events_before = await count_events(session, "product.imported")
    response = await upload(manager, csv_file(rows_for(prefix, 8)))
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "duplicate_sku"
    assert await count_products(session, prefix) == 1
    assert await count_events(session, "product.imported") == events_before


async def test_imported_products_are_complete_rows(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    prefix = f"ROW{uuid.uuid4().hex[:6].upper()}-"
    response = await upload(manager, csv_file(rows_for(prefix, 3)))
    assert response.json()["created"] == 3
    listed = await manager.get("/api/v1/products", params={"q": prefix, "sort": "sku"})
    items = listed.json()["items"]
    assert [item["sku"] for item in items] == [f"{prefix}000", f"{prefix}001", f"{prefix}002"]
    for item in items:
        assert datetime.fromisoformat(item["created_at"]).tzinfo is not None
        assert item["updated_at"] == item["created_at"]
        assert (item["unit"], item["is_active"], item["on_hand"]) == ("each", True, 0)
        assert (item["cost_price"], item["sale_price"], item["reorder_point"]) == (
            "2.50",
            "5.00",
            4,
        )
    detail = await manager.get(f"/api/v1/products/{items[0]['id']}")
    assert detail.headers["ETag"] == '"1"'  # version 1
    patched = await manager.patch(
        f"/api/v1/products/{items[0]['id']}",
        json={"name": "Renamed"},
        headers={"If-Match": detail.headers["ETag"]},
    )
    assert patched.status_code == 200, patched.text


async def test_an_import_of_many_batches_is_still_all_or_nothing(
    client_as: ClientAs, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of 3 rows: each batch is written while the next one is checked. A bad row in the
    # last batch, or a sku repeated two batches later, still leaves the catalog unchanged.
    monkeypatch.setattr(importer, "BATCH_ROWS", 3)
    manager = await client_as("manager")
    prefix = f"MANY{uuid.uuid4().hex[:6].upper()}-"
    existing = await make_product(session, sku=f"{prefix}004", name="Before")
    rows = rows_for(prefix, 11)
    rows[4]["name"] = "After"
    rows[10]["sale_price"] = "-1"  # spreadsheet row 12, in the fourth batch
    response = await upload(manager, csv_file(rows))
    assert response.status_code == 422, response.text
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(12, "sale_price")]
    assert await count_products(session, prefix) == 1
    await session.refresh(existing)
    assert existing.name == "Before"

    repeated = rows_for(prefix, 10)
    repeated[8]["sku"] = repeated[1]["sku"]
    response = await upload(manager, csv_file(repeated))
    assert response.status_code == 422, response.text
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(10, "sku")]
    assert await count_products(session, prefix) == 1

    response = await upload(manager, csv_file(rows[:10]))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "created": 9,
        "updated": 1,
        "unchanged": 0,
        "dry_run": False,
    }
    assert await count_products(session, prefix) == 10
    await session.refresh(existing)
    assert existing.name == "After"


FORMULAS = {
    "name": '=HYPERLINK("http://evil.example","click")',
    "description": "+1+cmd|' /C calc'!A0",
    "unit": "-box",
    "barcode": "@SUM(A1)",
}


async def test_export_neutralises_formula_like_cells_and_reimports_them_unchanged(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    category = await make_category(session, name=f"=cat {uuid.uuid4().hex[:6]}")
    product = await make_product(session, category_id=category.id, **FORMULAS)
    response = await manager.get("/api/v1/products/export", params={"sort": "sku"})
    assert response.status_code == 200
    rows = {r["sku"]: r for r in csv.DictReader(io.StringIO(response.text))}
    exported = rows[product.sku]
    for column, value in FORMULAS.items():
        assert exported[column] == "'" + value, column
    assert exported["category"] == "'" + category.name
    again = await upload(manager, response.content)
    assert again.status_code == 200, again.text
    assert again.json()["updated"] == 0
    await session.refresh(product)
    assert (product.name, product.description, product.unit, product.barcode) == tuple(
        FORMULAS.values()
    )


def test_every_formula_start_is_neutralised_and_read_back() -> None:
    from stockroom.safe_csv import safe_cell, unescape_cell

    for value in ["=1", "+1", "-1", "@x", "\tx", "\rx", "'=x", "''+x", "'plain", "plain", ""]:
        written = safe_cell(value)
        assert not written.startswith(("=", "+", "-", "@", "\t", "\r")), value
        assert unescape_cell(written) == value
