"""`stockroom stock ...`: ledger integrity check and idempotency key pruning."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import typer

from stockroom import commands
from stockroom.settings import Settings

stock_app = typer.Typer(
    help="The stock ledger: integrity check, housekeeping.", no_args_is_help=True
)


async def _drift(settings: Settings) -> tuple[list[Any], list[Any]]:
    from stockroom.stock.reservations import order_drift
    from stockroom.stock.service import ledger_drift

    async with commands.command_database(settings) as sessionmaker, sessionmaker() as session:
        ledger = await ledger_drift(session)
        async with session.begin():
            orders = await order_drift(session)
        return ledger, orders


def run_check(settings: Settings) -> int:
    """Print every drifting level; returns how many findings there are."""
    ledger, orders = asyncio.run(_drift(settings))
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
    drifting = run_check(commands.load_settings())
    if drifting:
        typer.echo(f"stock check: {drifting} level(s) drift from the ledger or orders", err=True)
        raise typer.Exit(1)
    typer.echo("stock check: every level matches its ledger, open transfers and open orders")


async def _prune(settings: Settings, ttl: timedelta) -> int:
    from stockroom.idempotency import prune_expired

    async with commands.command_database(settings) as sessionmaker:
        async with sessionmaker() as session, session.begin():
            return await prune_expired(session, ttl)


@stock_app.command("prune-idempotency-keys")
def prune_idempotency_keys() -> None:
    """Delete idempotency keys older than IDEMPOTENCY_KEY_TTL_HOURS."""
    settings = commands.load_settings()
    pruned = asyncio.run(_prune(settings, timedelta(hours=settings.idempotency_key_ttl_hours)))
    typer.echo(f"pruned {pruned} expired idempotency key(s)")
