"""Errors of the purchasing domain."""

from __future__ import annotations

from stockroom.http.errors import Conflict, NotFound


class PurchaseOrderNotFound(NotFound):
    default_detail = "purchase order not found"


class SupplierNotFound(NotFound):
    default_detail = "supplier not found"


class InactiveSupplier(Conflict):
    code = "inactive_supplier"
    default_detail = "the supplier is inactive: it takes no new or changed purchase orders"


class OverReceipt(Conflict):
    code = "over_receipt"
    default_detail = (
        "more than a line's outstanding quantity would be received; nothing was written"
    )
