"""`stockroom seed --demo`: a populated Stockroom to try the API on.

It spans the domains (catalog, stock, auth), so it sits above them, and it writes only through
their services, the same use cases the API runs: every row it creates is validated and recorded
as an activity event like any other.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom import commands
from stockroom.context import Context, Principal

if TYPE_CHECKING:
    from stockroom.catalog.models import Category, Warehouse
    from stockroom.catalog.service import ProductRow

# The domains' services are imported where they are used: loading them all would slow down every
# `stockroom` command, `--help` included.

Sessionmaker = async_sessionmaker[AsyncSession]

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


async def seed_users(sessionmaker: Sessionmaker, ctx: Context) -> list[tuple[str, str, str]]:
    """One user per seeded role through the auth service; (role, email, password or note)."""
    from stockroom.auth import service as auth_service
    from stockroom.auth.permissions import Perm
    from stockroom.auth.schemas import UserCreate
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
        password = secrets.token_urlsafe(12)
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


async def seed_catalog(
    sessionmaker: Sessionmaker, ctx: Context, products: int, rng: random.Random
) -> tuple[list[ProductRow], list[Warehouse]]:
    """The category tree, suppliers, warehouses and `products` products."""
    from stockroom.catalog import service as catalog_service
    from stockroom.catalog.schemas import (
        CategoryCreate,
        ProductCreate,
        SupplierCreate,
        WarehouseCreate,
    )

    leaves: list[Category] = []
    async with sessionmaker() as session:
        for root_name, children in DEMO_TREE.items():
            root = await catalog_service.create_category(
                session, CategoryCreate(name=root_name), ctx
            )
            for child_name, grandchildren in children.items():
                child = await catalog_service.create_category(
                    session, CategoryCreate(name=child_name, parent_id=root.id), ctx
                )
                if not grandchildren:
                    leaves.append(child)
                for leaf_name in grandchildren:
                    leaves.append(
                        await catalog_service.create_category(
                            session, CategoryCreate(name=leaf_name, parent_id=child.id), ctx
                        )
                    )
        suppliers = [
            await catalog_service.create_supplier(
                session, SupplierCreate(name=name, email=email, phone=phone), ctx
            )
            for name, email, phone in DEMO_SUPPLIERS
        ]
        warehouses = [
            await catalog_service.create_warehouse(
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
            created.append(await catalog_service.create_product(session, data, ctx))
    return created, warehouses


async def seed_stock(
    sessionmaker: Sessionmaker,
    ctx: Context,
    products: list[ProductRow],
    warehouses: list[Warehouse],
    rng: random.Random,
) -> int:
    """Receipts (and a few sales) through the stock ledger; how many movements were posted."""
    from stockroom.stock import service as stock_service
    from stockroom.stock.models import MovementType
    from stockroom.stock.schemas import MovementCreate

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


async def seed_orders(
    sessionmaker: Sessionmaker,
    ctx: Context,
    products: list[ProductRow],
    warehouses: list[Warehouse],
) -> tuple[int, int, int, int]:
    """Purchase and sales orders at the first warehouse, one or more in every status, through the
    order services (so receipts and shipments post through the ledger and reservations and
    on-order quantities are real); (purchase orders, sales orders, movements posted, reorder
    suggestions at the end).

    The sales orders sell the first product, which the fully received purchase order brought in
    (40 units), so every confirmation finds its stock whatever the random receipts were."""
    # Every mapped class: an order's `created_by` refers to `users`, whose mapping the seeder
    # has not loaded yet at this point (users are created last).
    import stockroom.db.models  # noqa: F401
    from stockroom.http.pagination import PageParams
    from stockroom.purchasing import reorder
    from stockroom.purchasing import service as po
    from stockroom.purchasing.repository import SuggestionFilter
    from stockroom.purchasing.schemas import (
        PurchaseOrderCreate,
        PurchaseOrderLineIn,
        ReceiveRequest,
    )
    from stockroom.sales import service as so
    from stockroom.sales.schemas import (
        Customer,
        SalesOrderCreate,
        SalesOrderLineIn,
        ShipRequest,
    )
    from stockroom.stock.order_schemas import LineQuantity

    warehouse = warehouses[0].id
    movements = 0

    def product(i: int) -> ProductRow:
        return products[i % len(products)]

    # (status, product index, quantity, received: None when never submitted, then cancelled?)
    purchases: list[tuple[str, int, int, int | None, bool]] = [
        ("draft", 2, 25, None, False),
        ("ordered", 3, 30, 0, False),
        ("partially_received", 1, 30, 12, False),
        ("received", 0, 40, 40, False),
        ("cancelled", 4, 10, 0, True),
        ("closed", 5, 20, 5, True),
    ]
    async with sessionmaker() as session:
        for note, index, quantity, received, cancel in purchases:
            item = product(index)
            order = await po.create_order(
                session,
                PurchaseOrderCreate(
                    supplier_id=item["supplier_id"],
                    warehouse_id=warehouse,
                    reference="DEMO",
                    note=f"demo: {note}",
                    lines=[PurchaseOrderLineIn(product_id=item["id"], quantity=quantity)],
                ),
                ctx,
            )
            if received is None:
                continue
            await po.submit_order(session, order.id, ctx)
            if received:
                lines = [LineQuantity(line_id=order.lines[0].id, quantity=received)]
                await po.receive_order(session, order.id, ReceiveRequest(lines=lines), ctx)
                movements += len(lines)
            if cancel:
                await po.cancel_order(session, order.id, ctx)

        first, second = product(0), product(1)
        two_products = first["id"] != second["id"]
        # (status, [(product, quantity)], shipped of the first line, then cancelled?)
        sales: list[tuple[str, list[tuple[ProductRow, int]], int | None, bool]] = [
            ("draft", [(first, 5)], None, False),
            ("confirmed", [(first, 6)], 0, False),
            ("partially_shipped", [(first, 8)] + ([(second, 4)] if two_products else []), 3, False),
            ("shipped", [(first, 4)], 4, False),
            ("cancelled", [(first, 3)], 0, True),
        ]
        for note, lines_in, shipped, cancel in sales:
            sale = await so.create_order(
                session,
                SalesOrderCreate(
                    warehouse_id=warehouse,
                    customer=Customer(name=f"Demo customer ({note})"),
                    reference="DEMO",
                    note=f"demo: {note}",
                    lines=[
                        SalesOrderLineIn(product_id=item["id"], quantity=quantity)
                        for item, quantity in lines_in
                    ],
                ),
                ctx,
            )
            if shipped is None:
                continue
            await so.confirm_order(session, sale.id, ctx)
            if shipped:
                lines = [LineQuantity(line_id=sale.lines[0].id, quantity=shipped)]
                await so.ship_order(session, sale.id, ShipRequest(lines=lines), ctx)
                movements += len(lines)
            if cancel:
                await so.cancel_order(session, sale.id, ctx)
        suggestions = await reorder.list_suggestions(
            session, SuggestionFilter(), PageParams(page=1, page_size=1)
        )
    return len(purchases), len(sales), movements, suggestions.total


def seed(
    demo: Annotated[bool, typer.Option("--demo", help="load the demo data set")] = False,
    products: Annotated[int, typer.Option(min=1, max=10_000, help="demo products")] = 300,
    random_seed: Annotated[int, typer.Option("--seed", help="random seed")] = 7,
) -> None:
    """Load demo data: a category tree, suppliers, 3 warehouses, products, stock, purchase and
    sales orders in every status, users."""
    if not demo:
        typer.echo("nothing to do: pass --demo to load the demo data set", err=True)
        raise typer.Exit(2)
    from stockroom.catalog import service as catalog_service

    rng = random.Random(random_seed)
    ctx = Context.system()

    async def main() -> int:
        async with commands.command_database(commands.load_settings()) as sessionmaker:
            async with sessionmaker() as session:
                present = await catalog_service.warehouse_code_in_use(
                    session, DEMO_WAREHOUSES[0][0]
                )
            if present:
                typer.echo("demo data is already present (warehouse MAIN exists); nothing done")
                return 0
            typer.echo("creating categories, suppliers, warehouses and products ...")
            created, warehouses = await seed_catalog(sessionmaker, ctx, products, rng)
            typer.echo("posting stock receipts and sales through the ledger ...")
            movements = await seed_stock(sessionmaker, ctx, created, warehouses, rng)
            typer.echo("creating purchase and sales orders in every status ...")
            purchase_orders, sales_orders, order_movements, suggestions = await seed_orders(
                sessionmaker, ctx, created, warehouses
            )
            movements += order_movements
            users = await seed_users(sessionmaker, ctx)
        categories = sum(1 + len(c) + sum(len(g) for g in c.values()) for c in DEMO_TREE.values())
        typer.echo(
            f"demo data: {categories} categories, {len(DEMO_SUPPLIERS)} suppliers, "
            f"{len(warehouses)} warehouses, {len(created)} products, {movements} stock movements"
        )
        typer.echo(
            f"demo orders: {purchase_orders} purchase orders, {sales_orders} sales orders; "
            f"{suggestions} reorder suggestions"
        )
        typer.echo("demo users (passwords are shown only now):")
        for role, email, password in users:
            typer.echo(f"  {role:<8} {email:<40} {password}")
        return 0

    raise typer.Exit(asyncio.run(main()))
