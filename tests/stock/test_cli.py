"""`stockroom stock check` finds drift between levels and the ledger."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from typer.testing import CliRunner

from stockroom.cli import app as cli_app
from stockroom.settings import get_settings
from tests.stock.live import live_app

runner = CliRunner()


def invoke_check(url: str, monkeypatch: Any) -> Any:
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        # The command runs its own event loop: keep it off the test's.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(runner.invoke, cli_app, ["stock", "check"]).result()
    finally:
        get_settings.cache_clear()


async def test_check_passes_on_a_consistent_ledger_and_reports_drift(
    fresh_database: str, monkeypatch: Any
) -> None:
    async with live_app(fresh_database) as live:
        product, (source, destination) = await live.product_in(10, 0)
        staff = await live.client("staff")
        created = await staff.post(
            "/api/v1/stock-transfers",
            json={
                "product_id": str(product.id),
                "from_warehouse_id": str(source.id),
                "to_warehouse_id": str(destination.id),
                "quantity": 4,
            },
        )
        assert created.status_code == 201
        await staff.aclose()

        clean = await asyncio.to_thread(invoke_check, fresh_database, monkeypatch)
        assert clean.exit_code == 0, clean.output
        # Someone edits a level behind the ledger's back.
        await live.scalar(
            "UPDATE stock_levels SET on_hand = on_hand + 5 WHERE product_id = :p "
            "AND warehouse_id = :w RETURNING on_hand",
            p=product.id,
            w=source.id,
        )
        drifted = await asyncio.to_thread(invoke_check, fresh_database, monkeypatch)

    assert drifted.exit_code == 1
    assert f"product={product.id} warehouse={source.id} on_hand=11 ledger=6" in drifted.output
    assert "in_transit_out=4 open_transfers=4" in drifted.output
