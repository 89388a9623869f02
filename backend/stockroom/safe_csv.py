"""The one CSV writer of the product: every CSV the API or the CLI writes goes through it.

A text cell that starts like a formula (`=`, `+`, `-`, `@`, tab, carriage return) is written
with a leading `'`, so that no spreadsheet runs it (CSV formula injection). A cell that would
start with `'` and then such a character gets one more `'`, so that `unescape_cell` gives every
text back exactly and an export re-imports unchanged. Numbers, dates and booleans are formatted
by us, never by a caller: a negative margin stays a number.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

_FORMULA_LIKE = re.compile(r"'*[=+\-@\t\r]")
_ESCAPED = re.compile(r"'+[=+\-@\t\r]")


def safe_cell(value: Any) -> str:
    """One cell as CSV text: formula-like text neutralised, our own values formatted."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    text = value if isinstance(value, str) else str(value)
    return "'" + text if _FORMULA_LIKE.match(text) else text


def unescape_cell(text: str) -> str:
    """The text `safe_cell` was given: an importer reads an export back unchanged."""
    return text[1:] if _ESCAPED.match(text) else text


class SafeCsvWriter:
    """Rows to CSV text, chunk by chunk (for streaming): `writer.text(rows)`."""

    def __init__(self, *, lineterminator: str = "\r\n") -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator=lineterminator)

    def text(self, rows: Iterable[Iterable[Any]]) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerows([safe_cell(value) for value in row] for row in rows)
        return self._buffer.getvalue()
