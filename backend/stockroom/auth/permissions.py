"""The permission set and the seeded roles of the contract."""

from __future__ import annotations

from enum import StrEnum


class Perm(StrEnum):
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    CATALOG_READ = "catalog:read"
    CATALOG_WRITE = "catalog:write"
    COSTS_READ = "costs:read"
    STOCK_READ = "stock:read"
    STOCK_WRITE = "stock:write"
    STOCK_ADJUST = "stock:adjust"
    PURCHASING_READ = "purchasing:read"
    PURCHASING_WRITE = "purchasing:write"
    SALES_READ = "sales:read"
    SALES_WRITE = "sales:write"
    REPORTS_READ = "reports:read"
    AUDIT_READ = "audit:read"
    WEBHOOKS_MANAGE = "webhooks:manage"


PERMISSION_DESCRIPTIONS: dict[Perm, str] = {
    Perm.USERS_READ: "list and view users and roles",
    Perm.USERS_WRITE: "create, change and deactivate users; manage roles",
    Perm.CATALOG_READ: "view categories, suppliers, warehouses and products",
    Perm.CATALOG_WRITE: "change categories, suppliers, warehouses and products",
    Perm.COSTS_READ: "see cost prices, margins and valuations",
    Perm.STOCK_READ: "view stock levels, movements, transfers and counts",
    Perm.STOCK_WRITE: "post receipts, sales and returns; transfers; stock counts",
    Perm.STOCK_ADJUST: "post adjustments and damage; reverse movements; review counts",
    Perm.PURCHASING_READ: "view purchase orders and reorder suggestions",
    Perm.PURCHASING_WRITE: "create, submit, receive and cancel purchase orders",
    Perm.SALES_READ: "view sales orders",
    Perm.SALES_WRITE: "create, confirm, ship and cancel sales orders",
    Perm.REPORTS_READ: "view sales and valuation reports",
    Perm.AUDIT_READ: "view the activity log and dashboards",
    Perm.WEBHOOKS_MANAGE: "manage webhook endpoints and their deliveries",
}

SEEDED_ROLES: dict[str, tuple[str, frozenset[Perm]]] = {
    "admin": ("full access", frozenset(Perm)),
    "manager": (
        "runs the catalog and stock, sees costs and reports",
        frozenset(
            {
                Perm.CATALOG_READ,
                Perm.CATALOG_WRITE,
                Perm.COSTS_READ,
                Perm.STOCK_READ,
                Perm.STOCK_WRITE,
                Perm.STOCK_ADJUST,
                Perm.PURCHASING_READ,
                Perm.PURCHASING_WRITE,
                Perm.SALES_READ,
                Perm.SALES_WRITE,
                Perm.REPORTS_READ,
                Perm.AUDIT_READ,
                Perm.USERS_READ,
            }
        ),
    ),
    "staff": (
        "cashier or clerk: sells, receives, transfers and counts stock",
        frozenset(
            {
                Perm.CATALOG_READ,
                Perm.STOCK_READ,
                Perm.STOCK_WRITE,
                Perm.PURCHASING_READ,
                Perm.SALES_READ,
                Perm.SALES_WRITE,
            }
        ),
    ),
    "analyst": (
        "reads the catalog, costs, stock, reports and the activity log",
        frozenset(
            {
                Perm.CATALOG_READ,
                Perm.COSTS_READ,
                Perm.STOCK_READ,
                Perm.PURCHASING_READ,
                Perm.SALES_READ,
                Perm.REPORTS_READ,
                Perm.AUDIT_READ,
            }
        ),
    ),
}
