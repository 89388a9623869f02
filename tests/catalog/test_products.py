from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Select, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog import product_queries
from stockroom.catalog.repository import product_count_statement, product_page_statement
from stockroom.catalog.schemas import ProductFilters
from stockroom.events.models import OutboxEvent
from stockroom.http.pagination import Sort
from tests.conftest import ClientAs
from tests.factories.catalog import (
    make_category,
    make_product,
    make_supplier,
    make_warehouse,
    set_stock_level,
)

COST_KEYS = {"cost_price", "margin"}


def product_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": f"P-{uuid.uuid4().hex[:8]}",
        "name": "Blue widget",
        "unit": "each",
        "cost_price": "4.00",
        "sale_price": "10.50",
        "reorder_point": 3,
        "reorder_quantity": 12,
    }
    body.update(overrides)
    return body


async def plan_of(session: AsyncSession, statement: Select[Any], params: dict[str, Any]) -> str:
    sql = statement.params(params).compile(
        dialect=postgresql.asyncpg.dialect(),  # type: ignore[attr-defined]
        compile_kwargs={"literal_binds": True},
    )
    connection = await session.connection()
    rows = await connection.exec_driver_sql(f"EXPLAIN {sql}")
    return "\n".join(row[0] for row in rows)


async def events_of(session: AsyncSession, type_: str) -> list[dict[str, Any]]:
    rows = await session.scalars(select(OutboxEvent).where(OutboxEvent.type == type_))
    return [row.payload for row in rows]


async def test_manager_creates_a_product_with_money_as_strings(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    category = await make_category(session)
    supplier = await make_supplier(session)
    response = await manager.post(
        "/api/v1/products",
        json=product_body(
            sku="BW-1", category_id=str(category.id), supplier_id=str(supplier.id), barcode="123"
        ),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == f"/api/v1/products/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert body["sale_price"] == "10.50"
    assert body["cost_price"] == "4.00"
    assert body["margin"] == "6.50"
    assert body["on_hand"] == 0
    assert body["category_id"] == str(category.id)
    assert body["is_active"] is True
    created = await events_of(session, "product.created")
    assert [e["entity"]["id"] for e in created] == [body["id"]]
    assert created[0]["data"]["sku"] == "BW-1"


async def test_product_detail_totals_stock_over_warehouses(
    client_as: ClientAs, session: AsyncSession
) -> None:
    analyst = await client_as("analyst")
    product = await make_product(session)
    north = await make_warehouse(session, code="NORTH")
    south = await make_warehouse(session, code="SOUTH")
    await set_stock_level(session, product, north, 7, in_transit_out=2)
    await set_stock_level(session, product, south, 5)
    response = await analyst.get(f"/api/v1/products/{product.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["on_hand"] == 12
    assert body["stock"] == [
        {
            "warehouse_id": str(north.id),
            "warehouse_code": "NORTH",
            "on_hand": 7,
            "reserved": 0,
            "available": 7,
            "on_order": 0,
            "in_transit_out": 2,
        },
        {
            "warehouse_id": str(south.id),
            "warehouse_code": "SOUTH",
            "on_hand": 5,
            "reserved": 0,
            "available": 5,
            "on_order": 0,
            "in_transit_out": 0,
        },
    ]
    assert response.headers["ETag"] == f'"{product.version}"'
    assert body["cost_price"] == "4.00"
    assert body["margin"] == "6.00"


async def test_unknown_product_is_404(client_as: ClientAs) -> None:
    staff = await client_as("staff")
    response = await staff.get(f"/api/v1/products/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_staff_never_sees_cost_price_or_margin(
    client_as: ClientAs, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    product = await make_product(session, name="Secret cost widget")
    listed = await staff.get("/api/v1/products", params={"q": "Secret cost"})
    assert listed.status_code == 200
    assert listed.json()["total"] == 1
    assert not COST_KEYS & set(listed.json()["items"][0])
    detail = await staff.get(f"/api/v1/products/{product.id}")
    assert detail.status_code == 200
    assert not COST_KEYS & set(detail.json())
    export = await staff.get("/api/v1/products/export", params={"q": "Secret cost"})
    assert export.status_code == 200
    header, row = export.text.splitlines()
    assert "cost_price" not in header
    assert "margin" not in header
    assert "4.00" not in row


async def test_manager_sees_costs_in_the_list(client_as: ClientAs, session: AsyncSession) -> None:
    manager = await client_as("manager")
    await make_product(session, name="Visible cost widget")
    listed = await manager.get("/api/v1/products", params={"q": "visible cost"})
    item = listed.json()["items"][0]
    assert item["cost_price"] == "4.00"
    assert item["margin"] == "6.00"


async def test_create_is_forbidden_without_catalog_write(client_as: ClientAs) -> None:
    for role in ("staff", "analyst"):
        c = await client_as(role)
        response = await c.post("/api/v1/products", json=product_body())
        assert response.status_code == 403, role
        assert response.json()["code"] == "permission_denied"


async def test_anonymous_caller_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/products")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_user_without_roles_cannot_list_products(client_as: ClientAs) -> None:
    nobody = await client_as()
    assert (await nobody.get("/api/v1/products")).status_code == 403


async def test_duplicate_sku_is_409_whatever_the_case(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    await make_product(session, sku="CASE-1")
    response = await manager.post("/api/v1/products", json=product_body(sku="case-1"))
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_sku"


async def test_duplicate_barcode_is_409(client_as: ClientAs, session: AsyncSession) -> None:
    manager = await client_as("manager")
    await make_product(session, barcode="4006381333931")
    response = await manager.post("/api/v1/products", json=product_body(barcode="4006381333931"))
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_barcode"


async def test_cost_above_sale_price_is_422_on_the_field(client_as: ClientAs) -> None:
    manager = await client_as("manager")
    response = await manager.post(
        "/api/v1/products", json=product_body(cost_price="11.00", sale_price="10.00")
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "cost_price"]


async def test_bad_product_fields_are_422(client_as: ClientAs) -> None:
    manager = await client_as("manager")
    for bad in (
        {"sale_price": "0"},
        {"sale_price": "-1.00"},
        {"cost_price": "-0.01"},
        {"sku": ""},
        {"name": ""},
        {"reorder_point": -1},
        {"sale_price": "1.234"},
        {"category_id": str(uuid.uuid4())},
        {"is_active": False},
    ):
        response = await manager.post("/api/v1/products", json=product_body(**bad))
        assert response.status_code == 422, bad
        assert response.json()["errors"], bad


async def test_patch_changes_fields_and_records_the_diff(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    product = await make_product(session, name="Old name")
    response = await manager.patch(
        f"/api/v1/products/{product.id}",
        json={"name": "New name", "sale_price": "12.00"},
        headers={"If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "New name"
    assert response.json()["sale_price"] == "12.00"
    assert response.headers["ETag"] == '"2"'
    updated = await events_of(session, "product.updated")
    assert updated[0]["changes"] == {
        "name": {"old": "Old name", "new": "New name"},
        "sale_price": {"old": "10.00", "new": "12.00"},
    }


async def test_patch_with_a_stale_etag_is_412_and_changes_nothing(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    product = await make_product(session, name="Original")
    first = await manager.patch(
        f"/api/v1/products/{product.id}", json={"name": "First"}, headers={"If-Match": '"1"'}
    )
    assert first.status_code == 200
    stale = await manager.patch(
        f"/api/v1/products/{product.id}", json={"name": "Second"}, headers={"If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert (await manager.get(f"/api/v1/products/{product.id}")).json()["name"] == "First"


async def test_patch_cost_above_existing_sale_price_is_422(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    product = await make_product(session)
    response = await manager.patch(f"/api/v1/products/{product.id}", json={"cost_price": "10.01"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "cost_price"]


async def test_patch_to_an_existing_sku_is_409_and_unknown_product_404(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    await make_product(session, sku="TAKEN-1")
    product = await make_product(session)
    conflict = await manager.patch(f"/api/v1/products/{product.id}", json={"sku": "taken-1"})
    assert conflict.status_code == 409
    missing = await manager.patch(f"/api/v1/products/{uuid.uuid4()}", json={"name": "x"})
    assert missing.status_code == 404
    nulls = await manager.patch(f"/api/v1/products/{product.id}", json={"sale_price": None})
    assert nulls.status_code == 422


async def test_staff_cannot_patch_or_delete(client_as: ClientAs, session: AsyncSession) -> None:
    staff = await client_as("staff")
    product = await make_product(session)
    assert (
        await staff.patch(f"/api/v1/products/{product.id}", json={"name": "x"})
    ).status_code == 403
    assert (await staff.delete(f"/api/v1/products/{product.id}")).status_code == 403
    assert (await staff.post(f"/api/v1/products/{product.id}/restore")).status_code == 403


async def test_delete_is_soft_and_restore_brings_it_back(
    client_as: ClientAs, session: AsyncSession
) -> None:
    manager = await client_as("manager")
    product = await make_product(session, name="Soft delete widget")
    deleted = await manager.delete(f"/api/v1/products/{product.id}")
    assert deleted.status_code == 204
    detail = await manager.get(f"/api/v1/products/{product.id}")
    assert detail.status_code == 200
    assert detail.json()["is_active"] is False
    active = await manager.get(
        "/api/v1/products", params={"q": "soft delete widget", "is_active": "true"}
    )
    assert active.json()["total"] == 0
    restored = await manager.post(f"/api/v1/products/{product.id}/restore")
    assert restored.status_code == 200
    assert restored.json()["is_active"] is True
    assert len(await events_of(session, "product.deleted")) == 1
    assert len(await events_of(session, "product.restored")) == 1
    assert (await manager.delete(f"/api/v1/products/{uuid.uuid4()}")).status_code == 404


async def test_unknown_sort_field_is_422(client_as: ClientAs) -> None:
    staff = await client_as("staff")
    response = await staff.get("/api/v1/products", params={"sort": "cost_price"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "sort"]


async def test_page_size_beyond_100_is_422(client_as: ClientAs) -> None:
    staff = await client_as("staff")
    assert (await staff.get("/api/v1/products", params={"page_size": 101})).status_code == 422


async def test_search_matches_name_sku_description_and_barcode_case_insensitively(
    client_as: ClientAs, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    tag = uuid.uuid4().hex[:6]
    by_name = await make_product(session, name=f"Gizmo {tag} large")
    by_sku = await make_product(session, sku=f"SKU-{tag.upper()}-Z")
    by_description = await make_product(session, description=f"a {tag.upper()} thing")
    by_barcode = await make_product(session, barcode=f"99{tag}11")
    await make_product(session, name="Unrelated")
    response = await staff.get("/api/v1/products", params={"q": tag.upper(), "page_size": 100})
    ids = {item["id"] for item in response.json()["items"]}
    assert ids == {str(p.id) for p in (by_name, by_sku, by_description, by_barcode)}
    assert response.json()["total"] == 4


async def test_search_takes_percent_and_underscore_literally(
    client_as: ClientAs, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    tag = uuid.uuid4().hex[:6]
    literal = await make_product(session, name=f"{tag} 100% cotton")
    await make_product(session, name=f"{tag} 1000 cotton")
    response = await staff.get("/api/v1/products", params={"q": f"{tag} 100%"})
    assert [item["id"] for item in response.json()["items"]] == [str(literal.id)]
    underscore = await staff.get("/api/v1/products", params={"q": f"{tag}_"})
    assert underscore.json()["total"] == 0


async def test_search_never_matches_across_two_fields(
    client_as: ClientAs, session: AsyncSession
) -> None:
    # The search index joins the four fields with chr(31): text joining the end of one field to
    # the start of the next matches nothing, and a query holding the separator (a control
    # character, which no text input accepts) is a 422.
    staff = await client_as("staff")
    tag = uuid.uuid4().hex[:6]
    separator = chr(31)
    product = await make_product(
        session,
        name=f"Nm{tag}",
        sku=f"SK{tag}",
        description=f"Ds{tag}",
        barcode=f"Bc{tag}",
    )
    for spanning in (f"{tag}SK{tag}", f"{tag}Ds", f"{tag}bc{tag}"):
        response = await staff.get("/api/v1/products", params={"q": spanning})
        assert response.status_code == 200
        assert response.json()["total"] == 0, spanning
    for holding_the_separator in (f"{tag}{separator}SK", f"{separator}Bc{tag}"):
        response = await staff.get("/api/v1/products", params={"q": holding_the_separator})
        assert response.status_code == 422, holding_the_separator
    for inside in (f"nm{tag}", f"SK{tag}", f"ds{tag}", f"BC{tag}"):
        response = await staff.get("/api/v1/products", params={"q": inside})
        assert [item["id"] for item in response.json()["items"]] == [str(product.id)], inside


async def test_search_is_one_scan_of_the_search_index(session: AsyncSession) -> None:
    # The query's expression must stay the index's expression, or every search is a table scan.
    filters = ProductFilters(q="hammer")
    count, params = product_count_statement(filters, None)
    gathered, _ = product_page_statement(filters, None, Sort("name"), 0, 50, total=10)
    walked, _ = product_page_statement(filters, None, Sort("name"), 0, 50, total=10**6)
    await session.execute(text("SET LOCAL enable_seqscan = off"))
    await session.execute(text("SET LOCAL enable_indexscan = off"))
    for statement in (count, gathered, walked):
        plan = await plan_of(session, statement, params | {"offset": 0, "limit": 50})
        assert plan.count("ix_products_search_trgm") == 1, plan
        assert "_trgm" not in plan.replace("ix_products_search_trgm", ""), plan


async def test_category_filter_includes_descendants(
    client_as: ClientAs, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    root = await make_category(session)
    child = await make_category(session, parent=root)
    grandchild = await make_category(session, parent=child)
    other = await make_category(session)
    in_root = await make_product(session, category_id=root.id)
    in_child = await make_product(session, category_id=child.id)
    in_grandchild = await make_product(session, category_id=grandchild.id)
    await make_product(session, category_id=other.id)
    await make_product(session)
    response = await staff.get("/api/v1/products", params={"category_id": str(root.id)})
    assert {item["id"] for item in response.json()["items"]} == {
        str(in_root.id),
        str(in_child.id),
        str(in_grandchild.id),
    }
    child_only = await staff.get("/api/v1/products", params={"category_id": str(child.id)})
    assert {item["id"] for item in child_only.json()["items"]} == {
        str(in_child.id),
        str(in_grandchild.id),
    }


async def test_supplier_low_stock_and_date_filters(
    client_as: ClientAs, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    supplier = await make_supplier(session)
    warehouse = await make_warehouse(session)
    low = await make_product(session, supplier_id=supplier.id, reorder_point=5)
    at_point = await make_product(session, supplier_id=supplier.id, reorder_point=5)
    plenty = await make_product(session, supplier_id=supplier.id, reorder_point=5)
    await set_stock_level(session, low, warehouse, 2)
    await set_stock_level(session, at_point, warehouse, 5)
    await set_stock_level(session, plenty, warehouse, 6)
    await make_product(session)

    def ids(response: httpx.Response) -> set[str]:
        return {item["id"] for item in response.json()["items"]}

    by_supplier = await staff.get("/api/v1/products", params={"supplier_id": str(supplier.id)})
    assert ids(by_supplier) == {str(low.id), str(at_point.id), str(plenty.id)}
    low_stock = await staff.get(
        "/api/v1/products", params={"supplier_id": str(supplier.id), "low_stock": "true"}
    )
    assert ids(low_stock) == {str(low.id), str(at_point.id)}
    not_low = await staff.get(
        "/api/v1/products", params={"supplier_id": str(supplier.id), "low_stock": "false"}
    )
    assert ids(not_low) == {str(plenty.id)}
    created = low.created_at.isoformat()
    from_low = await staff.get(
        "/api/v1/products", params={"supplier_id": str(supplier.id), "created_from": created}
    )
    assert str(low.id) in ids(from_low)
    before_low = await staff.get(
        "/api/v1/products", params={"supplier_id": str(supplier.id), "created_to": created}
    )
    assert str(low.id) not in ids(before_low)


async def test_sort_is_stable_across_pages_and_totals_are_right(
    client_as: ClientAs, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    supplier = await make_supplier(session)
    # Many equal sort keys: only the id tiebreak keeps pages from overlapping.
    products = [
        await make_product(session, supplier_id=supplier.id, name="Same", sale_price=Decimal(p))
        for p in ("5.00", "5.00", "7.00", "5.00", "9.00", "7.00", "5.00")
    ]
    for sort in ("name", "-name", "sale_price", "-sale_price", "on_hand", "-created_at", "sku"):
        seen: list[str] = []
        for page in (1, 2, 3):
            response = await staff.get(
                "/api/v1/products",
                params={
                    "supplier_id": str(supplier.id),
                    "sort": sort,
                    "page": page,
                    "page_size": 3,
                },
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["total"] == 7
            assert body["page"] == page
            seen.extend(item["id"] for item in body["items"])
        assert sorted(seen) == sorted(str(p.id) for p in products), sort
        assert len(seen) == len(set(seen)), sort
    prices = await staff.get(
        "/api/v1/products",
        params={"supplier_id": str(supplier.id), "sort": "-sale_price", "page_size": 100},
    )
    assert [i["sale_price"] for i in prices.json()["items"]] == [
        "9.00",
        "7.00",
        "7.00",
        "5.00",
        "5.00",
        "5.00",
        "5.00",
    ]


@pytest.mark.parametrize("gather_up_to", [0, 10_000])
async def test_pages_are_the_same_whichever_way_they_are_picked(
    client_as: ClientAs, session: AsyncSession, monkeypatch: pytest.MonkeyPatch, gather_up_to: int
) -> None:
    # Few matches are gathered and sorted, many are read off the sort order's index: with the
    # threshold at 0 every list takes the second way. Both must give the same, complete pages.
    monkeypatch.setattr(product_queries, "GATHER_UP_TO", gather_up_to)
    staff = await client_as("staff")
    tag = uuid.uuid4().hex[:6]
    root = await make_category(session)
    child = await make_category(session, parent=root)
    names = ["Delta", "alpha", "Charlie", "bravo", "Alpha", "delta", "Echo"]
    products = [
        await make_product(
            session,
            name=f"{name} {tag}",
            category_id=(root if i % 2 else child).id,
            sale_price=Decimal(5 + i % 3),
        )
        for i, name in enumerate(names)
    ]
    await make_product(session, name=f"Outside {tag}")  # matches q, not the category
    by_id = {str(p.id): p for p in products}
    params = {"q": tag, "category_id": str(root.id)}
    for sort in ("name", "-name", "sale_price", "-sale_price", "on_hand", "-created_at", "sku"):
        seen: list[str] = []
        for page in (1, 2, 3, 4):
            response = await staff.get(
                "/api/v1/products", params=params | {"sort": sort, "page": page, "page_size": 2}
            )
            assert response.status_code == 200, response.text
            assert response.json()["total"] == len(products), sort
            seen.extend(item["id"] for item in response.json()["items"])
        assert sorted(seen) == sorted(by_id), sort
        field = sort.lstrip("-")
        if field in ("name", "sale_price", "sku"):
            key = [(getattr(by_id[i], field), uuid.UUID(i)) for i in seen]
            assert key == sorted(key, reverse=sort.startswith("-")), sort
    beyond = await staff.get("/api/v1/products", params=params | {"page": 9, "page_size": 2})
    assert beyond.json()["items"] == []
    assert beyond.json()["total"] == len(products)


async def test_sort_by_on_hand(client_as: ClientAs, session: AsyncSession) -> None:
    staff = await client_as("staff")
    supplier = await make_supplier(session)
    warehouse = await make_warehouse(session)
    a = await make_product(session, supplier_id=supplier.id)
    b = await make_product(session, supplier_id=supplier.id)
    c = await make_product(session, supplier_id=supplier.id)
    await set_stock_level(session, a, warehouse, 10)
    await set_stock_level(session, c, warehouse, 3)
    response = await staff.get(
        "/api/v1/products", params={"supplier_id": str(supplier.id), "sort": "-on_hand"}
    )
    assert [(i["id"], i["on_hand"]) for i in response.json()["items"]] == [
        (str(a.id), 10),
        (str(c.id), 3),
        (str(b.id), 0),
    ]


async def test_openapi_documents_both_product_views(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    assert "cost_price" in components["ProductReadWithCosts"]["properties"]
    assert "cost_price" not in components["ProductRead"]["properties"]
    assert "/api/v1/products/{product_id}" in schema["paths"]


async def test_stock_routes_under_products_are_not_taken_by_catalog_routes(
    client_as: ClientAs, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    product = await make_product(session)
    low = await staff.get("/api/v1/products/low-stock")
    assert low.status_code == 200, low.text
    history = await staff.get(f"/api/v1/products/{product.id}/stock-history")
    assert history.status_code == 200, history.text


async def test_a_product_id_that_is_not_a_uuid_is_404(client_as: ClientAs) -> None:
    staff = await client_as("staff")
    assert (await staff.get("/api/v1/products/not-a-uuid")).status_code == 404


async def test_date_filters_accept_dates_without_offset_as_utc(client_as: ClientAs) -> None:
    staff = await client_as("staff")
    response = await staff.get(
        "/api/v1/products",
        params={"created_from": "2000-01-01T00:00:00", "created_to": "2000-01-02"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 0


async def test_stale_if_match_on_delete_is_412(client_as: ClientAs, session: AsyncSession) -> None:
    manager = await client_as("manager")
    product = await make_product(session)
    response = await manager.delete(f"/api/v1/products/{product.id}", headers={"If-Match": '"7"'})
    assert response.status_code == 412
    assert (await manager.get(f"/api/v1/products/{product.id}")).json()["is_active"] is True
