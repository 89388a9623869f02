"""CSV export of products: the filtered list, streamed through a server-side cursor.

The columns come from `schemas.export_columns`, the same visibility rule as the JSON models:
without `costs:read` there is no `cost_price` or `margin` column at all. The output re-imports
as is (category and supplier by name; unknown columns such as `on_hand` are ignored on import).
Cells go through the product's one CSV writer (`safe_csv`), so no cell runs as a formula.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.catalog import repository
from stockroom.catalog.schemas import ProductFilters, export_columns
from stockroom.db.session import transaction
from stockroom.http.pagination import Sort
from stockroom.safe_csv import SafeCsvWriter

DEFAULT_SORT = Sort("name")


def _cells(row: Any, columns: list[str]) -> list[Any]:
    mapping = row._mapping
    return [
        mapping["sale_price"] - mapping["cost_price"] if column == "margin" else mapping[column]
        for column in columns
    ]


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
    writer = SafeCsvWriter(lineterminator="\n")
    yield writer.text([columns])
    async with transaction(session):
        statement, params = await repository.export_statement(session, filters, sort)
        async for rows in repository.stream_rows(session, statement, params):
            text = writer.text(_cells(row, columns) for row in rows)
            if on_rows is not None:
                on_rows(len(rows))
            yield text


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
