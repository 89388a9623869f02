"""CSV import of products: upsert by sku, all or nothing, row-level errors, streaming.

The file is read once, in batches, through a text wrapper over the uploaded (spooled) file, so
even a 100 MB upload is never held in memory as a whole. Each batch is parsed off the event
loop, checked against the database (existing products by sku, barcodes), and written with one
COPY of the new products and one set-based UPDATE (`unnest` arrays). Everything happens in one
transaction: any bad row anywhere rolls the whole import back and the 422 lists the bad rows.
One `product.imported` event describes the import, not one event per row.

The steps by module: `import_parse` (header and rows to product values, with their errors),
`import_write` (rows checked against the database and sorted, then COPY and UPDATE) and this
one, which reads the file and runs the steps in one transaction, overlapping them.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable, Iterator
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom import events
from stockroom.catalog import repository
from stockroom.catalog.errors import CostColumnRefused, ImportRejected
from stockroom.catalog.import_parse import Columns, Outcome, ParsedRow, RowError, parse_batch
from stockroom.catalog.import_write import COPY_COLUMNS, Classified, Lookups, classify, write_batch
from stockroom.catalog.integrity import integrity_error
from stockroom.catalog.models import Category, Supplier
from stockroom.catalog.products import PRODUCT_FIELDS as FIELDS
from stockroom.catalog.schemas import ImportResult
from stockroom.context import Context
from stockroom.db.session import transaction

__all__ = ["BATCH_ROWS", "COPY_COLUMNS", "ProgressCallback", "import_products"]

# The batch size and the lookup of existing products are read from this module when used, so
# that a test can patch them here (a smaller batch, a lookup blind to a concurrent insert).
BATCH_ROWS = 5_000

ProgressCallback = Callable[[int, int], None]  # (rows read, bytes read)

_EXISTING = text(
    "SELECT id, lower(sku) AS key, " + ", ".join(FIELDS) + " FROM products "
    "WHERE lower(sku) = ANY(CAST(:keys AS text[]))"
)
_BARCODE_OWNERS = text(
    "SELECT barcode, lower(sku) AS key FROM products WHERE barcode = ANY(CAST(:codes AS text[]))"
)


async def _process_batch(
    session: AsyncSession,
    batch: list[ParsedRow],
    present: set[str],
    lookups: Lookups,
    out: Outcome,
    previous: Classified | None,
) -> Classified:
    """Check a batch against the database and classify its rows, while the previous batch (if
    given) is written: the classification (Python, in a worker thread) overlaps the write
    (PostgreSQL). Returns the batch's writes, for the next call or `write_batch` to do."""
    # The lookups go first: the session has one connection, and the write is about to take it.
    # They need not see the previous batch's rows: a sku or barcode seen earlier in the file is
    # caught by `lookups.seen_skus` / `seen_barcodes`, not by the database.
    keys = [parsed.values["sku"].lower() for parsed in batch]
    existing = {row.key: row._mapping for row in await session.execute(_EXISTING, {"keys": keys})}
    barcodes = [p.values["barcode"] for p in batch if p.values.get("barcode")]
    owners: dict[str, str] = {}
    if barcodes:
        owners = {
            row.barcode: row.key
            for row in await session.execute(_BARCODE_OWNERS, {"codes": barcodes})
        }
    # Off the event loop: a batch is thousands of rows of Python work.
    classifying = asyncio.ensure_future(
        asyncio.to_thread(classify, batch, keys, existing, owners, present, lookups, out)
    )
    try:
        if previous is not None and out.error_count == 0:
            await write_batch(session, previous)
    finally:
        # Even when the write failed: the worker thread cannot be cancelled; let it finish.
        classified: Classified = await classifying
    return classified


def _parse_next(
    records: Iterator[list[str]], columns: Columns, first_row: int
) -> asyncio.Future[Any]:
    return asyncio.ensure_future(
        asyncio.to_thread(parse_batch, records, columns, first_row, BATCH_ROWS)
    )


def _open_text(binary: IO[bytes]) -> io.TextIOWrapper:
    # `utf-8-sig` drops the byte order mark spreadsheet programs like to write.
    return io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")


async def import_products(
    session: AsyncSession,
    binary: IO[bytes],
    ctx: Context,
    *,
    dry_run: bool = False,
    can_set_costs: bool = True,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Upsert products from CSV by sku. Raises ImportRejected (422) listing bad rows; then
    nothing is written. With `dry_run` nothing is written either way; counts are reported.
    A `cost_price` column (even blank: blank sets the default) needs `can_set_costs`."""
    stream = _open_text(binary)
    out = Outcome()
    try:
        try:
            reader = csv.reader(stream)
            header = await asyncio.to_thread(next, reader, None)
            if header is None:
                raise ImportRejected(
                    "the file is empty",
                    errors=[RowError(1, None, "no header row").as_problem_error()],
                )
            columns = Columns(header)
            if "cost_price" in columns.present and not can_set_costs:
                raise CostColumnRefused()
            if columns.missing:
                errors = [
                    RowError(1, name, "required column is missing") for name in columns.missing
                ]
                raise ImportRejected(
                    f"missing columns: {', '.join(columns.missing)}",
                    errors=[e.as_problem_error() for e in errors],
                )
            async with transaction(session):
                lookups = Lookups(
                    categories=await repository.ids_by_lower_name(session, Category),
                    suppliers=await repository.ids_by_lower_name(session, Supplier),
                )
                next_row = 2  # spreadsheet numbering: the header is row 1
                records = iter(reader)
                parsing: asyncio.Future[Any] | None = _parse_next(records, columns, next_row)
                unwritten: Classified | None = None
                try:
                    while parsing is not None:
                        batch, parse_errors, count = await parsing
                        next_row += count
                        # The next batch is parsed in a worker thread while this one is checked
                        # and written: the parser's CPU overlaps the database's.
                        parsing = (
                            _parse_next(records, columns, next_row) if count == BATCH_ROWS else None
                        )
                        for error in parse_errors:
                            out.fail(error)
                        if batch:
                            unwritten = await _process_batch(
                                session, batch, columns.present, lookups, out, unwritten
                            )
                            if dry_run:
                                unwritten = None
                        if progress is not None:
                            progress(next_row - 2, _position(binary))
                finally:
                    if parsing is not None:
                        # A worker thread cannot be cancelled: let it finish its batch before
                        # the stream it reads is detached.
                        await asyncio.gather(parsing, return_exceptions=True)
                if out.error_count:
                    raise _rejected(out)
                if unwritten is not None:
                    await write_batch(session, unwritten)
                if not dry_run:
                    events.record(
                        session,
                        "product.imported",
                        ctx,
                        data={
                            "created": out.created,
                            "updated": out.updated,
                            "unchanged": out.unchanged,
                            "rows": next_row - 2,
                        },
                    )
        except UnicodeDecodeError:
            raise ImportRejected(
                "the file is not UTF-8 text",
                errors=[RowError(1, None, "the file is not UTF-8 text").as_problem_error()],
            ) from None
        except csv.Error as exc:
            raise ImportRejected(
                f"the file is not valid CSV ({exc})",
                errors=[RowError(0, None, f"not valid CSV: {exc}").as_problem_error()],
            ) from None
        except IntegrityError as exc:
            # A concurrent change won a race against this import (a sku or barcode appeared).
            raise integrity_error(exc) from None
    finally:
        stream.detach()  # leave the caller's file open; it owns it
    return ImportResult(
        created=out.created, updated=out.updated, unchanged=out.unchanged, dry_run=dry_run
    )


def _rejected(out: Outcome) -> ImportRejected:
    more = out.error_count - len(out.errors)
    detail = f"{out.error_count} invalid row value(s); nothing was imported"
    if more:
        detail += f" (first {len(out.errors)} listed)"
    return ImportRejected(detail, errors=[e.as_problem_error() for e in out.errors])


def _position(binary: IO[bytes]) -> int:
    try:
        return binary.tell()
    except (OSError, ValueError):
        return 0
