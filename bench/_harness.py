"""Shared pieces of the end-to-end benchmarks: a real `stockroom serve` on a throwaway data dir."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-admin-password-0123"
SECRET_KEY = "bench-secret-key-0123456789abcdef0123456789abcdef"
# A first start creates and migrates the embedded database: a minute or more on a busy machine.
READY_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MONGODB_URL"}}
    env.update(
        STOCKROOM_DATA_DIR=str(data_dir),
        SECRET_KEY=SECRET_KEY,
        FIRST_ADMIN_EMAIL=ADMIN_EMAIL,
        FIRST_ADMIN_PASSWORD=ADMIN_PASSWORD,
        LOG_LEVEL="WARNING",
        LOG_FORMAT="json",
    )
    env.update(extra)
    return env


@contextmanager
def serve(data_dir: Path | None = None, **env: str) -> Iterator[tuple[str, Path]]:
    """Start `stockroom serve` and yield (base URL, data dir); stop it afterwards."""
    with serve_process(data_dir, **env) as (base, data_dir, _pid):
        yield base, data_dir


@contextmanager
def serve_process(data_dir: Path | None = None, **env: str) -> Iterator[tuple[str, Path, int]]:
    """`serve`, also yielding the server's process id (for `CpuMeter`)."""
    owned = data_dir is None
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="stockroom-bench-")) / "data"
    port = free_port()
    log = open(data_dir.parent / f"serve-{port}.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "stockroom.cli", "serve", "--port", str(port)],
        env=server_env(data_dir, **env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited; see {log.name}")
            try:
                if httpx.get(f"{base}/api/v1/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready in {READY_TIMEOUT_S} s; see {log.name}")
            time.sleep(0.2)
        yield base, data_dir, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        if owned:
            import shutil

            shutil.rmtree(data_dir.parent, ignore_errors=True)


@contextmanager
def cli_process(
    data_dir: Path, *args: str, ready: str = "Ctrl-C to stop", **env: str
) -> Iterator[int]:
    """A long-running `stockroom <args>` (e.g. `relay`) on the data dir of a running `serve`;
    yields its process id once it printed `ready`; stopped (SIGTERM) afterwards."""
    log_path = data_dir.parent / f"{'-'.join(args)}-{os.getpid()}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stockroom.cli", *args],
            env=server_env(data_dir, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while ready not in log_path.read_text():
                if process.poll() is not None:
                    raise RuntimeError(f"`stockroom {' '.join(args)}` exited; see {log_path}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"`stockroom {' '.join(args)}` not ready; see {log_path}")
                time.sleep(0.2)
            yield process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def login(base: str, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> str:
    response = httpx.post(
        f"{base}/api/v1/auth/login-json", json={"email": email, "password": password}
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockroom.cli", *args],
        env=server_env(data_dir),
        capture_output=True,
        text=True,
        check=False,
    )


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (Linux /proc), 0 when unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


class CpuMeter:
    """CPU seconds used so far by the API process (with its worker processes) and by the
    PostgreSQL server (postmaster and backends), so the cost per request can be read even on a
    busy machine. Processes that exited meanwhile are not counted: read it around a phase."""

    def __init__(self, api_pid: int, data_dir: Path) -> None:
        self.api_pid = api_pid
        self.data_dir = data_dir

    def _postgres_pids(self) -> list[int]:
        try:
            postmaster = int((self.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [postmaster, *_children(postmaster)]

    def read(self) -> tuple[float, float]:
        api = sum(cpu_seconds(p) for p in [self.api_pid, *_children(self.api_pid)])
        return api, sum(cpu_seconds(p) for p in self._postgres_pids())
