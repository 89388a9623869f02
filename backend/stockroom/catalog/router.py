"""HTTP routes of the catalog domain: categories, suppliers and warehouses
(`simple_routes`) and products (`product_routes`), included in this order, which is the order
of the OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter

from stockroom.catalog.product_routes import product_router
from stockroom.catalog.simple_routes import category_router, supplier_router, warehouse_router

router = APIRouter()
router.include_router(category_router)
router.include_router(supplier_router)
router.include_router(warehouse_router)
router.include_router(product_router)
