"""CSV import of products, the first step: the header and each row parsed into the product
values they set, with the row's errors (a worker thread's work, no database).

`RowError` and `Outcome` (the counts and the reported errors of one import) are shared with
`import_write` and `importer`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from stockroom.safe_csv import unescape_cell
from stockroom.types import UNSAFE_TEXT_MESSAGE, has_unsafe_characters

MAX_REPORTED_ERRORS = 1_000
REQUIRED_COLUMNS = ("sku", "name", "sale_price")
# CSV column -> product field it sets. `category` and `supplier` are names, resolved to ids.
COLUMNS = {
    "sku": "sku",
    "name": "name",
    "description": "description",
    "category": "category_id",
    "supplier": "supplier_id",
    "unit": "unit",
    "barcode": "barcode",
    "cost_price": "cost_price",
    "sale_price": "sale_price",
    "reorder_point": "reorder_point",
    "reorder_quantity": "reorder_quantity",
    "is_active": "is_active",
}
DEFAULTS: dict[str, Any] = {
    "description": None,
    "category_id": None,
    "supplier_id": None,
    "unit": "each",
    "barcode": None,
    "cost_price": Decimal("0.00"),
    "reorder_point": 0,
    "reorder_quantity": 0,
    "is_active": True,
}
SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
MAX_MONEY = Decimal("9999999999.99")
MAX_QUANTITY = 2_000_000_000
TRUE = {"true", "t", "yes", "y", "1"}
FALSE = {"false", "f", "no", "n", "0"}
CENT = Decimal("0.01")


@dataclass(slots=True)
class RowError:
    row: int
    field: str | None
    msg: str

    def as_problem_error(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "field": self.field,
            "msg": self.msg,
            "loc": ["file", self.row, *([self.field] if self.field else [])],
            "type": "import_row",
        }


@dataclass(slots=True)
class ParsedRow:
    row: int
    values: dict[str, Any]  # product fields present in the file (category/supplier still names)


@dataclass(slots=True)
class Outcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0

    def fail(self, error: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)


class Columns:
    """The header: which column index feeds which field."""

    def __init__(self, header: list[str]) -> None:
        names = [name.strip().lower() for name in header]
        self.index = {name: i for i, name in reversed(list(enumerate(names))) if name in COLUMNS}
        self.present = {COLUMNS[name] for name in self.index}
        self.missing = [name for name in REQUIRED_COLUMNS if name not in self.index]


def _money(raw: str, name: str, errors: list[RowError], row: int) -> Decimal | None:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        errors.append(RowError(row, name, f"{raw!r} is not a decimal number"))
        return None
    if not value.is_finite() or value != value.quantize(CENT) or abs(value) > MAX_MONEY:
        errors.append(RowError(row, name, "must be a number with at most 2 decimal places"))
        return None
    return value.quantize(CENT)


def _quantity(raw: str, name: str, errors: list[RowError], row: int) -> int | None:
    try:
        value = int(raw)
    except ValueError:
        errors.append(RowError(row, name, f"{raw!r} is not a whole number"))
        return None
    if not 0 <= value <= MAX_QUANTITY:
        errors.append(RowError(row, name, "must be between 0 and 2000000000"))
        return None
    return value


def _text(raw: str, name: str, limit: int, errors: list[RowError], row: int) -> str | None:
    if len(raw) > limit:
        errors.append(RowError(row, name, f"longer than {limit} characters"))
        return None
    return raw


def parse_row(
    cells: list[str], columns: Columns, row: int
) -> tuple[ParsedRow | None, list[RowError]]:
    errors: list[RowError] = []
    values: dict[str, Any] = {}
    width = len(cells)
    for column, index in columns.index.items():
        raw = cells[index].strip() if index < width else ""
        name = COLUMNS[column]
        if has_unsafe_characters(raw):
            errors.append(RowError(row, name, UNSAFE_TEXT_MESSAGE))
            continue
        raw = unescape_cell(raw)  # an export's `'=...` cell is the text `=...`
        if name == "sku":
            if not SKU.match(raw):
                errors.append(RowError(row, "sku", "required: 1-64 letters, digits or . _ / - "))
            values["sku"] = raw
        elif name == "name":
            if not raw:
                errors.append(RowError(row, "name", "required"))
            values["name"] = _text(raw, "name", 200, errors, row)
        elif name == "sale_price":
            if not raw:
                errors.append(RowError(row, "sale_price", "required"))
                continue
            price = _money(raw, "sale_price", errors, row)
            if price is not None and price <= 0:
                errors.append(RowError(row, "sale_price", "must be greater than 0"))
            values["sale_price"] = price
        elif not raw:
            values[name] = DEFAULTS[name]
        elif name == "cost_price":
            cost = _money(raw, "cost_price", errors, row)
            if cost is not None and cost < 0:
                errors.append(RowError(row, "cost_price", "must not be negative"))
            values["cost_price"] = cost
        elif name in ("reorder_point", "reorder_quantity"):
            values[name] = _quantity(raw, name, errors, row)
        elif name == "is_active":
            lowered = raw.lower()
            if lowered not in TRUE and lowered not in FALSE:
                errors.append(RowError(row, "is_active", "must be true or false"))
            values["is_active"] = lowered in TRUE
        elif name == "barcode":
            if len(raw) > 64 or any(ch.isspace() for ch in raw):
                errors.append(RowError(row, "barcode", "at most 64 characters, no spaces"))
            values["barcode"] = raw
        elif name == "unit":
            values["unit"] = _text(raw, "unit", 20, errors, row)
        elif name == "description":
            values["description"] = _text(raw, "description", 10_000, errors, row)
        else:  # category or supplier name, resolved later
            values[name] = raw
    if errors:
        return None, errors
    return ParsedRow(row, values), errors


def parse_batch(
    records: Iterator[list[str]], columns: Columns, first_row: int, size: int
) -> tuple[list[ParsedRow], list[RowError], int]:
    """Up to `size` records from the reader (runs in a worker thread)."""
    parsed: list[ParsedRow] = []
    errors: list[RowError] = []
    count = 0
    for cells in records:
        row = first_row + count
        count += 1
        if not any(cell.strip() for cell in cells):
            continue  # blank lines are not products
        result, row_errors = parse_row(cells, columns, row)
        if result is not None:
            parsed.append(result)
        errors.extend(row_errors)
        if count >= size:
            break
    return parsed, errors, count
