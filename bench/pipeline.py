"""API CPU per request, in process: what the request pipeline itself costs, route by route.

    uv run python bench/pipeline.py [--requests 2000] [--profile ROUTE] [--top 40]

It starts an embedded PostgreSQL in a temporary folder, migrates it, builds the app with
`create_app` and runs its lifespan in this process, then drives the ASGI app directly (a scope,
a `receive` that hands over the body, a `send` that keeps the response: no HTTP parsing and no
client library), one request at a time. PostgreSQL runs in its own processes, so this process's
CPU time (`time.process_time`) per request is the API's CPU: routing, middleware, dependency
resolution, JWT, the driver, encoding. Each route is timed over `--requests` requests after a
warm-up; the table prints ms of CPU per request and the difference to `GET /health/live`.

Routes:
- `bare`: `GET /api/v1/health/live` on a FastAPI app holding only that route, no middleware
  (what the middleware stack and the full router cost over a bare route);
- `live`: `GET /api/v1/health/live` through the whole app;
- `me`: `GET /api/v1/users/me` (authentication is the whole response);
- `product`: `GET /api/v1/products/{id}`;
- `movement`: `POST /api/v1/stock-movements`, a receipt of 1;
- `movement-key`: the same with a fresh `Idempotency-Key` each time;
- `list`: `GET /api/v1/products?q=pipe&page_size=50`, a full page of 50 (what the catalog list
  costs the API besides its SQL; bench/catalog.py measures it at 1,000,000 products).

`--profile ROUTE` runs that route under cProfile and prints the top functions by own time and by
cumulative time (the profile costs CPU of its own: read shares, not absolute numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ADMIN_EMAIL, ADMIN_PASSWORD, SECRET_KEY
from stockroom.db import migrate
from stockroom.db.runtime import resolve_database
from stockroom.health.router import router as health_router
from stockroom.main import API_PREFIX, create_app
from stockroom.settings import Settings

LIST_PRODUCTS = 50
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def call(
    app: ASGIApp,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, bytes]:
    """One request straight into the ASGI app; (status, body)."""
    all_headers = [(b"host", b"127.0.0.1"), *(headers or [])]
    if body:
        all_headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": all_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # a disconnect never comes during a request
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def _area(filename: str) -> str:
    """The library (or stockroom package) a profiled function belongs to."""
    for marker in ("site-packages/", "backend/"):
        if marker in filename:
            tail = filename.split(marker, 1)[1].split("/")
            return "/".join(tail[:2]) if tail[0] == "stockroom" else tail[0]
    return "python" if filename.startswith(("/", "<")) else filename


def print_shares(stats: pstats.Stats, requests: int) -> None:
    """Own CPU time and calls per request, by library: where the time goes."""
    own: dict[str, float] = {}
    calls: dict[str, int] = {}
    for (filename, _, _), (_, ncalls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        area = _area(filename)
        own[area] = own.get(area, 0.0) + tottime
        calls[area] = calls.get(area, 0) + ncalls
    total = sum(own.values())
    print(f"\nper request: {sum(calls.values()) / requests:.0f} function calls")
    print("| area | share of own time | calls/request |")
    print("|---|---|---|")
    for area in sorted(own, key=own.__getitem__, reverse=True)[:15]:
        print(f"| {area} | {100 * own[area] / total:.0f} % | {calls[area] / requests:.0f} |")


def bare_app() -> FastAPI:
    app = FastAPI()
    app.include_router(health_router, prefix=API_PREFIX)
    return app


async def run(args: argparse.Namespace, settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        status, payload = await call(
            app,
            "POST",
            f"{API_PREFIX}/auth/login-json",
            body=json.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).encode(),
        )
        assert status == 200, payload
        bearer = [(b"authorization", f"Bearer {json.loads(payload)['access_token']}".encode())]

        async def create(path: str, data: dict[str, Any]) -> str:
            status, payload = await call(
                app, "POST", f"{API_PREFIX}{path}", body=json.dumps(data).encode(), headers=bearer
            )
            assert status == 201, payload
            return str(json.loads(payload)["id"])

        product = await create("/products", {"sku": "PIPE-1", "name": "Pipe", "sale_price": "3"})
        warehouse = await create("/warehouses", {"code": "PW1", "name": "Pipeline warehouse"})
        movement = json.dumps(
            {"product_id": product, "warehouse_id": warehouse, "type": "receipt", "quantity": 1}
        ).encode()
        for i in range(LIST_PRODUCTS - 1):  # a full page for `list`
            await create("/products", {"sku": f"PIPE-L{i}", "name": f"Pipe {i}", "sale_price": "3"})
        bare = bare_app()

        def authed() -> list[tuple[bytes, bytes]]:
            return bearer

        def keyed() -> list[tuple[bytes, bytes]]:
            return [*bearer, (b"idempotency-key", uuid.uuid4().hex.encode())]

        routes: dict[str, tuple[ASGIApp, str, str, bytes, Callable[[], Any], int]] = {
            "bare": (bare, "GET", f"{API_PREFIX}/health/live", b"", list, 200),
            "live": (app, "GET", f"{API_PREFIX}/health/live", b"", list, 200),
            "me": (app, "GET", f"{API_PREFIX}/users/me", b"", authed, 200),
            "product": (app, "GET", f"{API_PREFIX}/products/{product}", b"", authed, 200),
            "movement": (app, "POST", f"{API_PREFIX}/stock-movements", movement, authed, 201),
            "movement-key": (app, "POST", f"{API_PREFIX}/stock-movements", movement, keyed, 201),
            "list": (app, "GET", f"{API_PREFIX}/products?q=pipe&page_size=50", b"", authed, 200),
        }  # fmt: skip

        async def timed(name: str, n: int) -> float:
            target, method, path, body, headers, expected = routes[name]
            started = time.thread_time()
            for _ in range(n):
                status, payload = await call(target, method, path, body=body, headers=headers())
                if status != expected:
                    raise RuntimeError(f"{name}: {status} {payload[:300]!r}")
            return 1000 * (time.thread_time() - started) / n

        if args.profile:
            await timed(args.profile, 200)
            profiler = cProfile.Profile(time.thread_time)  # CPU, not wall: the machine is shared
            profiler.enable()
            await timed(args.profile, args.requests)
            profiler.disable()
            stats = pstats.Stats(profiler)
            print_shares(stats, args.requests)
            stats.sort_stats("tottime").print_stats(args.top)
            stats.sort_stats("cumulative").print_stats(args.top)
            return

        if args.routes:
            routes = {name: routes[name] for name in ["live", *args.routes.split(",")]}
        results: dict[str, list[float]] = {name: [] for name in routes}
        for name in routes:
            await timed(name, 200)
        for _ in range(args.rounds):  # interleaved, so a slow minute hits every route alike
            for name in routes:
                results[name].append(await timed(name, args.requests))
        print(
            f"\nAPI CPU per request (ms), in process, median of {args.rounds} rounds x "
            f"{args.requests} requests"
        )
        print("\n| route | ms/request | over live | rounds |")
        print("|---|---|---|---|")
        live = sorted(results["live"])[len(results["live"]) // 2]
        for name, values in results.items():
            median = sorted(values)[len(values) // 2]
            rounds = ", ".join(f"{v:.3f}" for v in values)
            print(f"| {name} | {median:.3f} | {median - live:+.3f} | {rounds} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per route and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", default=None, help="a route name: profile it instead")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--routes", default=None, help="comma-separated route names (default: all); for py-spy"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="stockroom-bench-pipeline-"))
    target = None
    try:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            stockroom_data_dir=root / "data",
            secret_key=SECRET_KEY,
            first_admin_email=ADMIN_EMAIL,
            first_admin_password=ADMIN_PASSWORD,
            relay_enabled=False,
            webhook_dispatcher_enabled=False,
            log_level="WARNING",
            log_format="json",
            mongodb_url=None,
        )
        target = resolve_database(settings)
        migrate.upgrade(target.url)
        asyncio.run(run(args, settings))
    finally:
        if target is not None and target.embedded_server is not None:
            target.embedded_server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
