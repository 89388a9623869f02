"""What authentication costs per request: `GET /users/me` vs `GET /health/live`.

Starts `stockroom serve` as a subprocess on a free 127.0.0.1 port (embedded PostgreSQL in a
temporary data folder, or `DATABASE_URL` if set), logs in once, then alternates rounds of the
two routes from the same client: C keep-alive connections, each sending N sequential requests
with a minimal HTTP/1.1 client (so the client's own cost stays small next to the server's).

    uv run python bench/auth.py [--connections 16] [--requests 400] [--rounds 3]

Every loop is bounded and talks to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import CpuMeter

ADMIN_EMAIL = "bench@example.com"
READY_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


def _request(method: str, path: str, port: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def call(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_request(method, path, port, headers, body))
        await writer.drain()
        return await _read_response(reader)
    finally:
        writer.close()


async def _connection_loop(port: int, raw: bytes, count: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    failures = 0
    try:
        for _ in range(count):
            writer.write(raw)
            await writer.drain()
            status, _ = await _read_response(reader)
            failures += status != 200
    finally:
        writer.close()
    return failures


@dataclass
class Round:
    rps: float
    api_cpu_ms: float  # API process CPU per request
    db_cpu_ms: float  # PostgreSQL CPU per request


async def measure(
    port: int, path: str, headers: dict[str, str], connections: int, n: int, meter: CpuMeter
) -> Round:
    """Requests per second and CPU per request for `connections` x `n` sequential GETs."""
    raw = _request("GET", path, port, headers, b"")
    api_before, db_before = meter.read()
    began = time.perf_counter()
    failures = await asyncio.gather(*(_connection_loop(port, raw, n) for _ in range(connections)))
    elapsed = time.perf_counter() - began
    api_after, db_after = meter.read()
    if any(failures):
        raise SystemExit(f"{sum(failures)} requests to {path} did not return 200")
    total = connections * n
    return Round(
        rps=total / elapsed,
        api_cpu_ms=1000 * (api_after - api_before) / total,
        db_cpu_ms=1000 * (db_after - db_before) / total,
    )


async def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited during start")
        try:
            status, _ = await call(port, "GET", "/api/v1/health/live", {})
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the server did not become ready")


async def run(args: argparse.Namespace, port: int, password: str, meter: CpuMeter) -> None:
    body = json.dumps({"email": ADMIN_EMAIL, "password": password}).encode()
    status, reply = await call(
        port, "POST", "/api/v1/auth/login-json", {"Content-Type": "application/json"}, body
    )
    if status != 200:
        raise SystemExit(f"login failed: {status} {reply[:200]!r}")
    bearer = {"Authorization": f"Bearer {json.loads(reply)['access_token']}"}
    routes = {"/api/v1/health/live": {}, "/api/v1/users/me": bearer}

    # Warm both paths (connection pool, caches) before measuring.
    for path, headers in routes.items():
        await measure(port, path, headers, args.connections, 20, meter)
    rounds: dict[str, list[Round]] = {path: [] for path in routes}
    for _ in range(args.rounds):  # alternate, so drifting machine load hits both alike
        for path, headers in routes.items():
            rounds[path].append(
                await measure(port, path, headers, args.connections, args.requests, meter)
            )
    total = args.connections * args.requests
    print(f"connections={args.connections} requests/round/route={total} rounds={args.rounds}")
    print(
        f"{'route':32s} {'req/s':>8s} {'API CPU ms/req':>15s} {'PG CPU ms/req':>14s}  rounds req/s"
    )
    summary: dict[str, tuple[float, float, float]] = {}
    for path, results in rounds.items():
        rps = statistics.median(r.rps for r in results)
        api = statistics.median(r.api_cpu_ms for r in results)
        db = statistics.median(r.db_cpu_ms for r in results)
        summary[path] = (rps, api, db)
        label = f"GET {path}" + (" (bearer)" if routes[path] else "")
        print(
            f"{label:32s} {rps:8.0f} {api:15.3f} {db:14.3f}  "
            + ", ".join(f"{r.rps:.0f}" for r in results)
        )
    live, me = summary["/api/v1/health/live"], summary["/api/v1/users/me"]
    print(f"ratio req/s users/me : health/live = {me[0] / live[0]:.2f}")
    print(
        f"authentication + permission loading per request: "
        f"{me[1] - live[1]:.3f} ms API CPU, {me[2] - live[2]:.3f} ms PostgreSQL CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--requests", type=int, default=400, help="per connection per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    password = secrets.token_urlsafe(16)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="stockroom-bench-") as data_dir:
        env = {k: v for k, v in os.environ.items() if k not in {"MONGODB_URL"}}
        env.update(
            STOCKROOM_DATA_DIR=str(Path(data_dir) / "data"),
            FIRST_ADMIN_EMAIL=ADMIN_EMAIL,
            FIRST_ADMIN_PASSWORD=password,
            LOG_LEVEL="WARNING",
            ENVIRONMENT="local",
            RELAY_ENABLED="false",
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "stockroom.cli", "serve", "--port", str(port), "--migrate"],
            env=env,
            cwd=data_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            asyncio.run(wait_ready(port, process))
            meter = CpuMeter(process.pid, Path(env["STOCKROOM_DATA_DIR"]))
            asyncio.run(run(args, port, password, meter))
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
