"""A caller never sets a cost it may not see, and no error message quotes one."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog.models import Product
from stockroom.stock.models import StockMovement
from tests.conftest import ClientAs
from tests.factories.auth import make_role
from tests.factories.catalog import make_product, make_warehouse


async def catalog_writer_without_costs(session: AsyncSession) -> str:
    return await make_role(session, ["catalog:read", "catalog:write"])


async def test_a_price_error_does_not_quote_a_cost_the_caller_may_not_see(
    client_as: ClientAs, session: AsyncSession
) -> None:
    writer = await client_as(await catalog_writer_without_costs(session))
    product = await make_product(session, cost_price=Decimal("104.79"), sale_price=Decimal("200"))
    response = await writer.patch(f"/api/v1/products/{product.id}", json={"sale_price": "0.01"})
    assert response.status_code == 422, response.text
    assert "104.79" not in response.text
    assert response.json()["errors"][0]["type"] == "cost_above_sale_price"


async def test_setting_a_cost_price_needs_costs_read(
    client_as: ClientAs, session: AsyncSession
) -> None:
    writer = await client_as(await catalog_writer_without_costs(session))
    product = await make_product(session, cost_price=Decimal("4.00"))
    patched = await writer.patch(f"/api/v1/products/{product.id}", json={"cost_price": "0.00"})
    assert patched.status_code == 403, patched.text
    assert patched.json()["detail"] == "this requires the costs:read permission"
    created = await writer.post(
        "/api/v1/products", json={"sku": "C-1", "name": "x", "sale_price": "5", "cost_price": "1"}
    )
    assert created.status_code == 403, created.text
    await session.refresh(product)
    assert product.cost_price == Decimal("4.00")
    assert await session.scalar(select(Product.id).where(Product.sku == "C-1")) is None
    # Without a cost, the same caller creates and changes products as before.
    plain = await writer.post(
        "/api/v1/products", json={"sku": "C-2", "name": "x", "sale_price": "5"}
    )
    assert plain.status_code == 201, plain.text
    assert "cost_price" not in plain.json()


async def test_importing_a_cost_price_column_needs_costs_read(
    client_as: ClientAs, session: AsyncSession
) -> None:
    writer = await client_as(await catalog_writer_without_costs(session))
    content = b"sku,name,sale_price,cost_price\nIMP-C1,x,5.00,\n"
    response = await writer.post(
        "/api/v1/products/import", files={"file": ("p.csv", content, "text/csv")}
    )
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == "this requires the costs:read permission"
    assert await session.scalar(select(Product.id).where(Product.sku == "IMP-C1")) is None
    manager = await client_as("manager")
    allowed = await manager.post(
        "/api/v1/products/import", files={"file": ("p.csv", content, "text/csv")}
    )
    assert allowed.status_code == 200, allowed.text


async def test_a_receipt_unit_cost_needs_costs_read(
    client_as: ClientAs, session: AsyncSession
) -> None:
    staff = await client_as("staff")
    product = await make_product(session, cost_price=Decimal("4.00"))
    warehouse = await make_warehouse(session)
    body = {"product_id": str(product.id), "warehouse_id": str(warehouse.id), "type": "receipt"}
    poisoned = await staff.post(
        "/api/v1/stock-movements", json={**body, "quantity": 5, "unit_cost": "9999999999.99"}
    )
    assert poisoned.status_code == 403, poisoned.text
    assert poisoned.json()["detail"] == "this requires the costs:read permission"
    assert (
        await session.scalar(select(StockMovement.id).where(StockMovement.product_id == product.id))
        is None
    )
    plain = await staff.post("/api/v1/stock-movements", json={**body, "quantity": 5})
    assert plain.status_code == 201, plain.text
    assert "unit_cost" not in plain.json()
    manager = await client_as("manager")
    costed = await manager.post(
        "/api/v1/stock-movements", json={**body, "quantity": 5, "unit_cost": "3.50"}
    )
    assert costed.status_code == 201, costed.text
    assert costed.json()["unit_cost"] == "3.50"


async def test_a_403_names_the_permission_as_its_string(client_as: ClientAs) -> None:
    staff = await client_as("staff")
    response = await staff.get("/api/v1/users")
    assert response.status_code == 403
    assert response.json()["detail"] == "this requires the users:read permission"
    assert "Perm" not in response.text
