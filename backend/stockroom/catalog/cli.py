"""`stockroom` subcommands of the catalog domain: `import products`, `export products`,
`seed --demo`. They run the same service code as the API, on the database the settings name
(embedded by default, migrated first)."""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")

import_app = typer.Typer(help="Import data from files.", no_args_is_help=True)
export_app = typer.Typer(help="Export data to files.", no_args_is_help=True)


@asynccontextmanager
async def _database() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    from stockroom.cli import load_settings
    from stockroom.db import migrate
    from stockroom.db.engine import create_engine, create_sessionmaker
    from stockroom.db.runtime import resolve_database

    settings = load_settings()
    target = await asyncio.to_thread(resolve_database, settings)
    if target.is_embedded:
        # Alembic runs its own event loop: keep it off this one.
        await asyncio.to_thread(migrate.upgrade, target.url)
    engine = create_engine(target.url, pool_size=2, max_overflow=2)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


def _run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


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
        async with _database() as sessionmaker, sessionmaker() as session:
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

    raise typer.Exit(_run(main))


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

    from stockroom.catalog import exporter, repository
    from stockroom.catalog.schemas import ProductFilters

    filters = ProductFilters(
        q=q,
        category_id=uuid.UUID(category_id) if category_id else None,
        is_active=True if active_only else None,
    )

    async def main() -> None:
        async with _database() as sessionmaker, sessionmaker() as session:
            async with session.begin():
                _, total = await repository.list_products(
                    session, filters, exporter.DEFAULT_SORT, 0, 1
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

    _run(main)


# Demo data

DEMO_TREE: dict[str, dict[str, list[str]]] = {
    "Hardware": {"Fasteners": ["Screws", "Bolts"], "Hand tools": ["Hammers", "Wrenches"]},
    "Electrical": {"Cables": [], "Lighting": ["Bulbs", "Fixtures"]},
    "Garden": {"Watering": [], "Seeds": []},
}
DEMO_SUPPLIERS = [
    ("Acme Industrial", "orders@acme.example.com", "+1 555 0100"),
    ("Northwind Traders", "sales@northwind.example.com", "+1 555 0101"),
    ("Globex Supply", "supply@globex.example.com", "+44 20 7946 0102"),
    ("Initech Parts", "parts@initech.example.com", "+1 555 0103"),
]
DEMO_WAREHOUSES = [
    ("MAIN", "Main warehouse", "1 Depot Road, Springfield"),
    ("NORTH", "North depot", "42 Ridge Way, Shelbyville"),
    ("CITY", "City store", "7 High Street, Capital City"),
]
DEMO_ADJECTIVES = ["Heavy-duty", "Compact", "Galvanised", "Pro", "Classic", "Eco", "Deluxe"]
DEMO_NOUNS = {
    "Screws": ["wood screw", "drywall screw", "machine screw"],
    "Bolts": ["hex bolt", "carriage bolt", "eye bolt"],
    "Hammers": ["claw hammer", "sledge hammer", "mallet"],
    "Wrenches": ["spanner", "pipe wrench", "torque wrench"],
    "Cables": ["extension cable", "power cord", "speaker wire"],
    "Bulbs": ["LED bulb", "halogen bulb", "smart bulb"],
    "Fixtures": ["ceiling light", "wall sconce", "flood light"],
    "Watering": ["garden hose", "sprinkler", "watering can"],
    "Seeds": ["tomato seeds", "basil seeds", "lawn seed"],
}
DEMO_ROLES = ("admin", "manager", "staff", "analyst")


def _seed_password() -> str:
    import secrets

    return secrets.token_urlsafe(12)


async def _seed_users(
    sessionmaker: async_sessionmaker[AsyncSession], ctx: Any
) -> list[tuple[str, str, str]]:
    """One user per seeded role through the auth service; (role, email, password or note)."""
    from stockroom.auth import service as auth_service
    from stockroom.auth.permissions import Perm
    from stockroom.auth.schemas import UserCreate
    from stockroom.context import Principal
    from stockroom.http.errors import Conflict

    # The seeder acts as the system: it may grant every role.
    system = Principal(
        id=uuid.UUID(int=0),
        email="system@stockroom.invalid",
        full_name="seed",
        is_active=True,
        roles=("admin",),
        permissions=frozenset(str(p) for p in Perm),
    )
    created: list[tuple[str, str, str]] = []
    for role in DEMO_ROLES:
        email = f"{role}@demo.stockroom.example.com"
        password = _seed_password()
        data = UserCreate(
            email=email, password=password, full_name=f"Demo {role.title()}", roles=[role]
        )
        async with sessionmaker() as session:
            try:
                await auth_service.create_user(session, data, system, ctx)
            except Conflict:
                created.append((role, email, "(already existed; password unchanged)"))
                continue
        created.append((role, email, password))
    return created


async def _seed_catalog(
    sessionmaker: async_sessionmaker[AsyncSession], ctx: Any, products: int, rng: random.Random
) -> tuple[list[Any], list[Any]]:
    from stockroom.catalog import service
    from stockroom.catalog.schemas import (
        CategoryCreate,
        ProductCreate,
        SupplierCreate,
        WarehouseCreate,
    )

    leaves: list[Any] = []
    async with sessionmaker() as session:
        for root_name, children in DEMO_TREE.items():
            root = await service.create_category(session, CategoryCreate(name=root_name), ctx)
            for child_name, grandchildren in children.items():
                child = await service.create_category(
                    session, CategoryCreate(name=child_name, parent_id=root.id), ctx
                )
                if not grandchildren:
                    leaves.append(child)
                for leaf_name in grandchildren:
                    leaves.append(
                        await service.create_category(
                            session, CategoryCreate(name=leaf_name, parent_id=child.id), ctx
                        )
                    )
        suppliers = [
            await service.create_supplier(
                session, SupplierCreate(name=name, email=email, phone=phone), ctx
            )
            for name, email, phone in DEMO_SUPPLIERS
        ]
        warehouses = [
            await service.create_warehouse(
                session, WarehouseCreate(code=code, name=name, address=address), ctx
            )
            for code, name, address in DEMO_WAREHOUSES
        ]
        created = []
        for i in range(products):
            leaf = leaves[i % len(leaves)]
            noun = rng.choice(DEMO_NOUNS.get(leaf.name, ["item"]))
            sale = Decimal(rng.randrange(199, 19999)) / 100
            cost = (sale * Decimal(rng.uniform(0.35, 0.8))).quantize(Decimal("0.01"))
            data = ProductCreate(
                sku=f"DEMO-{i + 1:05d}",
                name=f"{rng.choice(DEMO_ADJECTIVES)} {noun} {i + 1}",
                description=f"{noun.capitalize()} from the {leaf.name.lower()} range",
                category_id=leaf.id,
                supplier_id=rng.choice(suppliers).id,
                unit="each" if i % 5 else "box",
                barcode=f"200{i + 1:010d}",
                cost_price=cost,
                sale_price=sale,
                reorder_point=rng.choice([5, 10, 20]),
                reorder_quantity=rng.choice([20, 50, 100]),
            )
            created.append(await service.create_product(session, data, ctx))
    return created, warehouses


async def _seed_stock(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Any,
    products: list[Any],
    warehouses: list[Any],
    rng: random.Random,
) -> int | None:
    """Receipts (and a few sales) through the stock ledger; None if the ledger is not there."""
    try:
        from stockroom.stock import service as stock_service
        from stockroom.stock.models import MovementType
        from stockroom.stock.schemas import MovementCreate
    except ImportError:
        return None
    posted = 0
    async with sessionmaker() as session:
        for product in products:
            for warehouse in warehouses:
                if rng.random() < 0.3:
                    continue
                received = rng.randrange(0, 120)
                if received == 0:
                    continue
                await stock_service.post_movement(
                    session,
                    MovementCreate(
                        product_id=product["id"],
                        warehouse_id=warehouse.id,
                        type=MovementType.RECEIPT,
                        quantity=received,
                        reference="DEMO-PO",
                    ),
                    ctx,
                )
                posted += 1
                sold = rng.randrange(0, received + 1) if rng.random() < 0.5 else 0
                if sold:
                    await stock_service.post_movement(
                        session,
                        MovementCreate(
                            product_id=product["id"],
                            warehouse_id=warehouse.id,
                            type=MovementType.SALE,
                            quantity=sold,
                            reference="DEMO-SALE",
                        ),
                        ctx,
                    )
                    posted += 1
    return posted


def seed(
    demo: Annotated[bool, typer.Option("--demo", help="load the demo data set")] = False,
    products: Annotated[int, typer.Option(min=1, max=10_000, help="demo products")] = 300,
    random_seed: Annotated[int, typer.Option("--seed", help="random seed")] = 7,
) -> None:
    """Load demo data: a category tree, suppliers, 3 warehouses, products, stock, users."""
    if not demo:
        typer.echo("nothing to do: pass --demo to load the demo data set", err=True)
        raise typer.Exit(2)
    from sqlalchemy import select

    from stockroom.catalog.models import Warehouse
    from stockroom.context import Context

    rng = random.Random(random_seed)
    ctx = Context.system()

    async def main() -> int:
        async with _database() as sessionmaker:
            async with sessionmaker() as session, session.begin():
                present = await session.scalar(
                    select(Warehouse.id).where(Warehouse.code == DEMO_WAREHOUSES[0][0])
                )
            if present is not None:
                typer.echo("demo data is already present (warehouse MAIN exists); nothing done")
                return 0
            typer.echo("creating categories, suppliers, warehouses and products ...")
            created, warehouses = await _seed_catalog(sessionmaker, ctx, products, rng)
            typer.echo("posting stock receipts and sales through the ledger ...")
            movements = await _seed_stock(sessionmaker, ctx, created, warehouses, rng)
            users = await _seed_users(sessionmaker, ctx)
        categories = sum(1 + len(c) + sum(len(g) for g in c.values()) for c in DEMO_TREE.values())
        typer.echo(
            f"demo data: {categories} categories, {len(DEMO_SUPPLIERS)} suppliers, "
            f"{len(warehouses)} warehouses, {len(created)} products, "
            + (f"{movements} stock movements" if movements is not None else "no stock (no ledger)")
        )
        typer.echo("demo users (passwords are shown only now):")
        for role, email, password in users:
            typer.echo(f"  {role:<8} {email:<40} {password}")
        return 0

    raise typer.Exit(_run(main))


def register(app: typer.Typer) -> None:
    """Add this domain's commands to the `stockroom` command."""
    app.add_typer(import_app, name="import")
    app.add_typer(export_app, name="export")
    app.command("seed")(seed)
