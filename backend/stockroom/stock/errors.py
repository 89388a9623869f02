"""Errors of the stock domain."""

from __future__ import annotations

# One class per concept: a missing product or warehouse is the catalog's error, whichever domain
# looks it up (stock may import catalog; catalog never imports stock).
from stockroom.catalog.errors import ProductNotFound as ProductNotFound
from stockroom.catalog.errors import WarehouseNotFound as WarehouseNotFound
from stockroom.http.errors import Conflict, NotFound


class InsufficientStock(Conflict):
    code = "insufficient_stock"
    default_detail = "not enough stock on hand for this movement; nothing was written"


class InsufficientAvailable(Conflict):
    code = "insufficient_available"
    default_detail = (
        "not enough available (unreserved) stock for this movement; nothing was written"
    )


class InvalidTransition(Conflict):
    code = "invalid_transition"
    default_detail = "the resource is not in a state that allows this action"


class InactiveProduct(Conflict):
    code = "inactive_product"
    default_detail = "the product is inactive"


class InactiveWarehouse(Conflict):
    code = "inactive_warehouse"
    default_detail = "the warehouse is inactive"


class AlreadyReversed(Conflict):
    code = "already_reversed"
    default_detail = "this movement has already been reversed"


class NotReversible(Conflict):
    code = "not_reversible"
    default_detail = "this movement cannot be reversed"


class StockLimitExceeded(Conflict):
    code = "stock_limit_exceeded"
    default_detail = "this movement would take on hand beyond the largest storable quantity"


class MovementNotFound(NotFound):
    default_detail = "stock movement not found"


class TransferNotFound(NotFound):
    default_detail = "stock transfer not found"


class CountNotFound(NotFound):
    default_detail = "stock count not found"
