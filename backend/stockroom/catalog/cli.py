"""The catalog domain's commands: `stockroom import products` and `stockroom export products`.
They run the same service code as the API, on the database the settings name
(embedded by default, migrated first)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer

from stockroom import commands

import_app = typer.Typer(help="Import data from files.", no_args_is_help=True)
export_app = typer.Typer(help="Export data to files.", no_args_is_help=True)


@import_app.command("products")
def import_products(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV file")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="validate and count only; write nothing")
    ] = False,
) -> None:
    """Upsert products from a CSV file by sku (all or nothing), like POST /products/import."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from stockroom.catalog import importer
    from stockroom.catalog.errors import ImportRejected
    from stockroom.context import Context
    from stockroom.http.errors import AppError

    size = file.stat().st_size

    async def main() -> int:
        async with (
            commands.command_database(commands.load_settings()) as sessionmaker,
            sessionmaker() as session,
        ):
            with (
                Progress(
                    TextColumn("[bold]importing"),
                    BarColumn(),
                    DownloadColumn(),
                    TextColumn("{task.fields[rows]} rows"),
                    TimeElapsedColumn(),
                    transient=False,
                ) as progress,
                file.open("rb") as handle,
            ):
                task = progress.add_task("import", total=size, rows=0)

                def advance(rows: int, position: int) -> None:
                    progress.update(task, completed=position, rows=rows)

                try:
                    result = await importer.import_products(
                        session, handle, Context.system(), dry_run=dry_run, progress=advance
                    )
                except ImportRejected as exc:
                    progress.stop()
                    typer.echo(f"import rejected: {exc.detail}", err=True)
                    for error in (exc.errors or [])[:50]:
                        field = error.get("field") or "-"
                        typer.echo(f"  row {error['row']}, {field}: {error['msg']}", err=True)
                    return 1
                except AppError as exc:
                    progress.stop()
                    typer.echo(f"import failed: {exc.detail}", err=True)
                    return 1
                progress.update(task, completed=size)
        verb = "would be" if dry_run else "were"
        typer.echo(
            f"{result.created} products {verb} created, {result.updated} updated, "
            f"{result.unchanged} unchanged"
        )
        return 0

    raise typer.Exit(asyncio.run(main()))


@export_app.command("products")
def export_products(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="CSV file to write (default: stdout)")
    ] = None,
    q: Annotated[
        str | None, typer.Option(help="substring of name, sku, description, barcode")
    ] = None,
    category_id: Annotated[
        str | None, typer.Option(help="this category and its descendants")
    ] = None,
    active_only: Annotated[bool, typer.Option(help="only active products")] = False,
    costs: Annotated[bool, typer.Option(help="include cost_price and margin")] = True,
) -> None:
    """Write products as CSV, like GET /products/export (re-importable)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from stockroom.catalog import exporter, service
    from stockroom.catalog.schemas import ProductFilters
    from stockroom.http.pagination import PageParams

    filters = ProductFilters(
        q=q,
        category_id=uuid.UUID(category_id) if category_id else None,
        is_active=True if active_only else None,
    )

    async def main() -> None:
        async with (
            commands.command_database(commands.load_settings()) as sessionmaker,
            sessionmaker() as session,
        ):
            _, total = await service.list_products(
                session, filters, exporter.DEFAULT_SORT, PageParams(page=1, page_size=1)
            )
            out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
            try:
                with Progress(
                    TextColumn("[bold]exporting"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    console=Console(stderr=True),
                ) as progress:
                    task = progress.add_task("export", total=total)
                    async for chunk in exporter.csv_chunks(
                        session,
                        filters,
                        can_see_costs=costs,
                        on_rows=lambda n: progress.advance(task, n),
                    ):
                        out.write(chunk)
            finally:
                if output:
                    out.close()
        if output:
            typer.echo(f"{total} products written to {output}", err=True)

    asyncio.run(main())
