"""`stockroom serve` as a user runs it: a real process on the embedded PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.servers import READY_TIMEOUT_S, free_port, running_server, serve_env

pytestmark = pytest.mark.slow


def test_serve_starts_embedded_postgres_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    started = time.monotonic()
    with running_server(data_dir, port) as (process, base):
        first_start_s = time.monotonic() - started
        ready = httpx.get(f"{base}/api/v1/health/ready").json()
        assert ready["postgres"] == "ok"
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200
        # The document is built on its first request (about 1 s idle, 3-6 s on a loaded CI
        # host), longer than httpx's 5 s default allows for.
        marker = httpx.get(f"{base}/openapi.json", timeout=30).json()["info"]["title"]
        assert marker == "Stockroom"
        # Stop and read what it printed: the URLs and the backends it uses.
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        banner = process.stdout.read() if process.stdout else ""
    assert process.returncode == 0, banner
    assert f"http://127.0.0.1:{port}/api/v1" in banner
    assert f"http://127.0.0.1:{port}/docs" in banner
    assert "embedded PostgreSQL" in banner
    assert first_start_s < READY_TIMEOUT_S
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "PostgreSQL left running"

    with running_server(data_dir, free_port()) as (_, base):
        # The same cluster: migrations already applied, so the schema is current and it serves.
        assert httpx.get(f"{base}/api/v1/health/ready").status_code == 200


def test_two_servers_on_one_data_dir_share_the_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir, free_port()) as (_, first):
        with running_server(data_dir, free_port()) as (_, second):
            assert httpx.get(f"{first}/api/v1/health/ready").status_code == 200
            assert httpx.get(f"{second}/api/v1/health/ready").status_code == 200
        # The second one leaving does not stop the server the first one still uses.
        assert httpx.get(f"{first}/api/v1/health/ready").status_code == 200


def test_serve_refuses_an_out_of_date_external_schema(
    tmp_path: Path, database_factory: object
) -> None:
    # An empty database (no migrations) reached through DATABASE_URL.
    import asyncio

    from tests.conftest import DatabaseFactory

    assert isinstance(database_factory, DatabaseFactory)
    name = f"stockroom_empty_{os.getpid()}"
    database_factory.cluster.execute_sync(f'CREATE DATABASE "{name}"')
    database_factory.created.append(name)
    url = database_factory.cluster.url_for(name)
    env = serve_env(tmp_path)
    env["DATABASE_URL"] = url
    result = subprocess.run(
        [sys.executable, "-m", "stockroom.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "out of date" in result.stderr
    assert "stockroom migrate" in result.stderr
    del asyncio


def test_a_killed_server_does_not_keep_postgres_running_forever(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir, free_port()) as (process, _):
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    # PostgreSQL outlived the killed API; the next server joins it, and stops it on a clean exit.
    assert (data_dir / "postgres" / "postmaster.pid").exists()
    with running_server(data_dir, free_port()) as (process, _):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
