"""Running `stockroom serve` as a real process, for tests that need one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

READY_TIMEOUT_S = 120  # generous: CI machines can be busy; "ready in 15 s" is measured separately


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MONGODB_URL"}}
    env.update(
        STOCKROOM_DATA_DIR=str(data_dir),
        LOG_FORMAT="json",
        ENVIRONMENT="local",
        RELAY_ENABLED="true",
    )
    env.update(extra)
    return env


@contextmanager
def running_server(
    data_dir: Path, port: int, **env: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "stockroom.cli", "serve", "--port", str(port)],
        env=serve_env(data_dir, **env),
        cwd=str(data_dir.parent),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, base)
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(process: subprocess.Popen[str], base: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"server exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{base}/api/v1/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    output = process.stdout.read() if process.stdout else ""
    raise AssertionError(f"not ready within {READY_TIMEOUT_S}s:\n{output}")


def psql_scalar_rows(data_dir: Path, sql: str) -> list[str]:
    """Rows of a query on the embedded database under `data_dir`, one string per row."""
    result = run_cli(data_dir, "psql", "-c", sql)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def run_cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`stockroom ARGS` against the same data folder as a server started by `running_server`."""
    return subprocess.run(
        [sys.executable, "-m", "stockroom.cli", *args],
        env=serve_env(data_dir, **env),
        cwd=str(data_dir.parent),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 30, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not reached within {timeout}s")
