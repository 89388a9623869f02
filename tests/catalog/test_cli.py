"""`stockroom import products` / `stockroom export products` as a user runs them."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


async def stockroom(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MONGODB_URL"}}
    env.update(DATABASE_URL=database_url, LOG_LEVEL="WARNING", RELAY_ENABLED="false")
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stockroom.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_import_then_export_round_trips_through_the_cli(
    fresh_database: str, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("sku,name,sale_price,cost_price\nCLI-1,First,2.00,1.00\nCLI-2,Second,3.00,\n")
    dry = await stockroom(fresh_database, "import", "products", str(source), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2 products would be created" in dry.stdout
    real = await stockroom(fresh_database, "import", "products", str(source))
    assert real.returncode == 0, real.stderr
    assert "2 products were created, 0 updated, 0 unchanged" in real.stdout
    again = await stockroom(fresh_database, "import", "products", str(source))
    assert "0 products were created, 0 updated, 2 unchanged" in again.stdout

    exported = tmp_path / "out.csv"
    result = await stockroom(fresh_database, "export", "products", "--output", str(exported))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(exported.open(encoding="utf-8")))
    assert [(r["sku"], r["cost_price"], r["sale_price"]) for r in rows] == [
        ("CLI-1", "1.00", "2.00"),
        ("CLI-2", "0.00", "3.00"),
    ]


async def test_a_bad_file_is_rejected_with_its_rows(fresh_database: str, tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("sku,name,sale_price\nOK-1,Fine,1.00\nBAD-1,Broken,free\n")
    result = await stockroom(fresh_database, "import", "products", str(source))
    assert result.returncode == 1
    assert "row 3, sale_price" in result.stderr
    export = await stockroom(fresh_database, "export", "products")
    assert export.stdout.strip().count("\n") == 0  # the header only: nothing was imported
