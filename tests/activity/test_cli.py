"""`stockroom events export`: the retained events, filtered, as NDJSON or CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from typer.testing import CliRunner

import stockroom.commands
from stockroom.cli import app as cli_app
from stockroom.context import Actor, Context
from stockroom.db.engine import create_engine
from stockroom.events import record
from stockroom.events.models import OutboxEvent
from stockroom.types import utcnow
from tests.conftest import make_settings


async def _record_delivered(url: str) -> dict[str, list[str]]:
    """Events committed through the outbox and marked delivered, as the relay leaves them."""
    engine = create_engine(url)
    ctx = Context(actor=Actor(id=uuid.uuid4(), email="ops@example.com"), request_id="r1")
    ids: dict[str, list[str]] = {"product": [], "stock": []}
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        async with session.begin():
            for i in range(3):
                ids["product"].append(
                    str(record(session, "product.created", ctx, entity=("product", uuid.uuid4())))
                )
                ids["stock"].append(
                    str(record(session, "stock.movement_posted", ctx, data={"quantity": i + 1}))
                )
        async with session.begin():
            await session.execute(update(OutboxEvent).values(delivered_at=utcnow()))
    await engine.dispose()
    return ids


@pytest.fixture
def recorded(fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    ids = asyncio.run(_record_delivered(fresh_database))
    monkeypatch.setattr(stockroom.commands, "load_settings", lambda: make_settings(fresh_database))
    return ids


def test_export_writes_filtered_ndjson_to_standard_output(recorded: dict[str, list[str]]) -> None:
    result = CliRunner().invoke(cli_app, ["events", "export", "--type", "product.*"])

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(recorded["product"])
    assert {line["type"] for line in lines} == {"product.created"}
    assert lines[0]["actor"]["email"] == "ops@example.com"


def test_export_writes_csv_to_a_file(recorded: dict[str, list[str]], tmp_path: Path) -> None:
    target = tmp_path / "events.csv"
    result = CliRunner().invoke(
        cli_app,
        ["events", "export", "--format", "csv", "--since", "2000-01-01", "--output", str(target)],
    )

    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = list(csv.DictReader(io.StringIO(target.read_text())))
    assert sorted(r["id"] for r in rows) == sorted(recorded["product"] + recorded["stock"])
    quantities = sorted(json.loads(r["data"])["quantity"] for r in rows if r["data"])
    assert quantities == [1, 2, 3]


def test_export_refuses_a_bad_type_filter(recorded: dict[str, list[str]]) -> None:
    result = CliRunner().invoke(cli_app, ["events", "export", "--type", "not valid"])
    assert result.exit_code == 2
    assert "type" in result.output
