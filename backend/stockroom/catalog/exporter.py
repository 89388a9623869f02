"""CSV export of products: the filtered list, streamed through a server-side cursor.

The columns come from `schemas.export_columns`, the same visibility rule as the JSON models:
without `costs:read` there is no `cost_price` or `margin` column at all. The output re-imports
as is (category and supplier by name; unknown columns such as `on_hand` are ignored on import).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.catalog import repository
from stockroom.catalog.schemas import ProductFilters, export_columns
from stockroom.db.session import transaction
from stockroom.http.pagination import Sort

DEFAULT_SORT = Sort("name")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _cells(row: Any, columns: list[str]) -> list[Any]:
    mapping = row._mapping
    cells = []
    for column in columns:
        if column == "margin":
            cells.append(_cell(mapping["sale_price"] - mapping["cost_price"]))
        else:
            cells.append(_cell(mapping[column]))
    return cells


async def csv_chunks(
    session: AsyncSession,
    filters: ProductFilters,
    sort: Sort = DEFAULT_SORT,
    *,
    can_see_costs: bool,
    on_rows: Callable[[int], None] | None = None,
) -> AsyncIterator[str]:
    """CSV text in chunks (header first), inside one read transaction on `session`."""
    columns = export_columns(can_see_costs)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    yield buffer.getvalue()
    async with transaction(session):
        statement, params = await repository.export_statement(session, filters, sort)
        async for rows in repository.stream_rows(session, statement, params):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(_cells(row, columns) for row in rows)
            if on_rows is not None:
                on_rows(len(rows))
            yield buffer.getvalue()


async def export_products_csv(
    sessionmaker: async_sessionmaker[AsyncSession],
    filters: ProductFilters,
    sort: Sort,
    *,
    can_see_costs: bool,
) -> AsyncIterator[bytes]:
    """UTF-8 CSV bytes for a streaming HTTP response, on a session of its own: the stream
    outlives the request handler, so it must not borrow the request's session."""
    async with sessionmaker() as session:
        async for chunk in csv_chunks(session, filters, sort, can_see_costs=can_see_costs):
            yield chunk.encode("utf-8")
