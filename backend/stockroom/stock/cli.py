"""`stockroom stock ...`: ledger integrity check and idempotency key pruning."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import typer

stock_app = typer.Typer(
    help="The stock ledger: integrity check, housekeeping.", no_args_is_help=True
)


async def _drift(url: str) -> tuple[list[Any], list[Any]]:
    from stockroom.db.engine import create_engine, create_sessionmaker
    from stockroom.stock.reservations import order_drift
    from stockroom.stock.service import ledger_drift

    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with create_sessionmaker(engine)() as session:
            ledger = await ledger_drift(session)
            async with session.begin():
                orders = await order_drift(session)
            return ledger, orders
    finally:
        await engine.dispose()


def run_check(url: str) -> int:
    """Print every drifting level; returns how many findings there are."""
    ledger, orders = asyncio.run(_drift(url))
    for row in ledger:
        typer.echo(
            f"DRIFT product={row.product_id} warehouse={row.warehouse_id} "
            f"on_hand={row.on_hand} ledger={row.ledger} "
            f"in_transit_out={row.in_transit_out} open_transfers={row.open_transfers}"
        )
    for row in orders:
        typer.echo(
            f"DRIFT product={row.product_id} warehouse={row.warehouse_id} "
            f"reserved={row.reserved} unshipped={row.unshipped} "
            f"line_reservations={row.reservations} "
            f"on_order={row.on_order} outstanding={row.outstanding}"
        )
    return len(ledger) + len(orders)


@stock_app.command("check")
def check() -> None:
    """Verify every level: on_hand == sum(ledger), in_transit_out == open transfers, reserved
    == unshipped quantities of confirmed and partially shipped sales orders, on_order ==
    outstanding quantities of ordered and partially received purchase orders.

    Prints each drift and exits 1 if there is any, 0 when the ledger and levels agree.
    """
    from stockroom.cli import load_settings
    from stockroom.db.runtime import resolve_database

    target = resolve_database(load_settings())
    drifting = run_check(target.url)
    if drifting:
        typer.echo(f"stock check: {drifting} level(s) drift from the ledger or orders", err=True)
        raise typer.Exit(1)
    typer.echo("stock check: every level matches its ledger, open transfers and open orders")


async def _prune(url: str, ttl: timedelta) -> int:
    from stockroom.db.engine import create_engine, create_sessionmaker
    from stockroom.idempotency import prune_expired

    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await prune_expired(session, ttl)
    finally:
        await engine.dispose()


@stock_app.command("prune-idempotency-keys")
def prune_idempotency_keys() -> None:
    """Delete idempotency keys older than IDEMPOTENCY_KEY_TTL_HOURS."""
    from stockroom.cli import load_settings
    from stockroom.db.runtime import resolve_database

    settings = load_settings()
    target = resolve_database(settings)
    pruned = asyncio.run(_prune(target.url, timedelta(hours=settings.idempotency_key_ttl_hours)))
    typer.echo(f"pruned {pruned} expired idempotency key(s)")


def register(app: typer.Typer) -> None:
    """Add this domain's commands to the `stockroom` command."""
    app.add_typer(stock_app, name="stock")
