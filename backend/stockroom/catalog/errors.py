"""Errors of the catalog domain."""

from __future__ import annotations

from stockroom.http.errors import Conflict, NotFound, ValidationFailed


class CategoryNotFound(NotFound):
    default_detail = "category not found"


class SupplierNotFound(NotFound):
    default_detail = "supplier not found"


class WarehouseNotFound(NotFound):
    default_detail = "warehouse not found"


class ProductNotFound(NotFound):
    default_detail = "product not found"


class DuplicateName(Conflict):
    code = "duplicate_name"


class DuplicateCode(Conflict):
    code = "duplicate_code"


class DuplicateSku(Conflict):
    code = "duplicate_sku"
    default_detail = "a product with this sku already exists"


class DuplicateBarcode(Conflict):
    code = "duplicate_barcode"
    default_detail = "a product with this barcode already exists"


class InUse(Conflict):
    """A delete refused because other rows still depend on the resource."""

    code = "in_use"


class ImportRejected(ValidationFailed):
    """A CSV import with row-level errors; nothing was written."""

    code = "import_rejected"
    default_detail = "the file has invalid rows; nothing was imported"


class CostColumnRefused(Exception):
    """The file sets cost prices and the caller lacks costs:read (the router answers 403)."""
