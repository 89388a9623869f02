"""Errors of the sales domain."""

from __future__ import annotations

from stockroom.http.errors import Conflict, NotFound


class SalesOrderNotFound(NotFound):
    default_detail = "sales order not found"


class OverShipment(Conflict):
    code = "over_shipment"
    default_detail = "more than a line's unshipped quantity would be shipped; nothing was written"
