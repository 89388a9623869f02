"""API CPU of confirming and shipping a 10-line sales order against posting one movement.

    uv run python bench/orders.py [--orders 300] [--rounds 3]

Same method as bench/pipeline.py (whose `call` it uses): an embedded PostgreSQL in a temporary
folder, the app built with `create_app` and driven as ASGI in this process, one request at a time.
PostgreSQL runs in its own processes, so this thread's CPU time (`time.thread_time`) per request
is the API's CPU. Timed, interleaved per round so that a slow minute hits both alike:

- `movement`: `POST /stock-movements`, a receipt of 1 (the reference);
- `confirm`: `POST /sales-orders/{id}/confirm` of a fresh 10-line draft (each line 1 unit of a
  different product), and `ship`: `POST /sales-orders/{id}/ship` of all 10 lines. The drafts are
  created between the timed calls, untimed.

The issue's target: confirm + ship of the 10-line order <= 2 x one movement. Both actions are
set-based (one call of the posting primitive for all lines), so their CPU does not grow per line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ADMIN_EMAIL, ADMIN_PASSWORD, SECRET_KEY
from pipeline import ASGIApp, call
from stockroom.db import migrate
from stockroom.db.runtime import resolve_database
from stockroom.main import API_PREFIX, create_app
from stockroom.settings import Settings

LINES = 10


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


async def run(args: argparse.Namespace, settings: Settings) -> None:
    app: ASGIApp = create_app(settings)
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        status, payload = await call(
            app,
            "POST",
            f"{API_PREFIX}/auth/login-json",
            body=json.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).encode(),
        )
        assert status == 200, payload
        bearer = [(b"authorization", f"Bearer {json.loads(payload)['access_token']}".encode())]

        async def post(path: str, data: dict[str, Any], expected: int) -> dict[str, Any]:
            status, payload = await call(
                app, "POST", f"{API_PREFIX}{path}", body=json.dumps(data).encode(), headers=bearer
            )
            if status != expected:
                raise RuntimeError(f"{path}: {status} {payload[:300]!r}")
            body: dict[str, Any] = json.loads(payload)
            return body

        warehouse = (await post("/warehouses", {"code": "OB1", "name": "Orders bench"}, 201))["id"]
        products = [
            (
                await post(
                    "/products", {"sku": f"OB-{i}", "name": f"Item {i}", "sale_price": "3"}, 201
                )
            )["id"]
            for i in range(LINES)
        ]
        stock_needed = (args.orders + 50) * (args.rounds + 1)
        for product in products:
            await post(
                "/stock-movements",
                {
                    "product_id": product,
                    "warehouse_id": warehouse,
                    "type": "receipt",
                    "quantity": stock_needed,
                },
                201,
            )
        movement = json.dumps(
            {"product_id": products[0], "warehouse_id": warehouse, "type": "receipt", "quantity": 1}
        ).encode()
        draft = {
            "warehouse_id": warehouse,
            "customer": {"name": "Bench"},
            "lines": [{"product_id": p, "quantity": 1} for p in products],
        }

        async def movements(n: int, profiler: Any = None) -> float:
            started = time.thread_time()
            if profiler:
                profiler.enable()
            for _ in range(n):
                status, payload = await call(
                    app, "POST", f"{API_PREFIX}/stock-movements", body=movement, headers=bearer
                )
                if status != 201:
                    raise RuntimeError(f"movement: {status} {payload[:300]!r}")
            if profiler:
                profiler.disable()
            return 1000 * (time.thread_time() - started) / n

        async def timed(path: str, body: bytes, profiler: Any) -> tuple[float, bytes]:
            """One action's request, and only it, timed (and profiled): as for a movement, the
            bench's own JSON encoding and decoding stay outside."""
            started = time.thread_time()
            if profiler:
                profiler.enable()
            status, payload = await call(app, "POST", path, body=body, headers=bearer)
            if profiler:
                profiler.disable()
            cpu = time.thread_time() - started
            if status != 200:
                raise RuntimeError(f"{path}: {status} {payload[:300]!r}")
            return cpu, payload

        async def orders(n: int, profilers: Any = None) -> tuple[float, float]:
            """Mean CPU of confirm and of ship; with `profilers` (one per action) each action is
            profiled alone (the draft's creation is not)."""
            confirm_cpu = ship_cpu = 0.0
            on_confirm, on_ship = profilers or (None, None)
            for _ in range(n):
                order = await post("/sales-orders", draft, 201)  # untimed
                path = f"{API_PREFIX}/sales-orders/{order['id']}"
                lines = [{"line_id": line["id"], "quantity": 1} for line in order["lines"]]
                shipment = json.dumps({"lines": lines}).encode()
                cpu, _ = await timed(f"{path}/confirm", b"{}", on_confirm)
                confirm_cpu += cpu
                cpu, shipped = await timed(f"{path}/ship", shipment, on_ship)
                ship_cpu += cpu
                assert json.loads(shipped)["status"] == "shipped", shipped
            return 1000 * confirm_cpu / n, 1000 * ship_cpu / n

        await movements(50)  # warm-up
        await orders(20)
        if args.profile:
            import cProfile
            import pstats

            profilers = [cProfile.Profile(time.thread_time) for _ in range(3)]
            await movements(args.orders, profilers[0])
            await orders(args.orders, profilers[1:])
            for name, profiler in zip(("movement", "confirm", "ship"), profilers, strict=True):
                print(f"\n### {name}")
                stats = pstats.Stats(profiler).sort_stats(args.sort)
                stats.print_stats(args.top)
            return
        moves: list[float] = []
        confirms: list[float] = []
        ships: list[float] = []
        for _ in range(args.rounds):
            moves.append(await movements(args.orders))
            confirm, ship = await orders(args.orders)
            confirms.append(confirm)
            ships.append(ship)

        m, c, s = median(moves), median(confirms), median(ships)
        print(
            f"\nAPI CPU per request (ms), in process, median of {args.rounds} rounds x "
            f"{args.orders} requests; {LINES}-line orders"
        )
        print("\n| request | ms CPU | x one movement | rounds |")
        print("|---|---|---|---|")
        for name, value, values in (
            ("movement (receipt of 1)", m, moves),
            (f"confirm ({LINES} lines)", c, confirms),
            (f"ship ({LINES} lines)", s, ships),
        ):
            rounds = ", ".join(f"{v:.3f}" for v in values)
            print(f"| {name} | {value:.3f} | {value / m:.2f} | {rounds} |")
        ratio = (c + s) / m
        verdict = "meets" if ratio <= 2 else "misses"
        print(f"| confirm + ship | {c + s:.3f} | {ratio:.2f} | |")
        print(f"\nconfirm + ship / movement = {ratio:.2f} ({verdict} the target of <= 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=300, help="orders (and movements) per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile movement, confirm and ship instead"
    )
    parser.add_argument("--sort", default="tottime", help="the profile's order (pstats key)")
    parser.add_argument("--top", type=int, default=30, help="the profile's rows")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="stockroom-bench-orders-"))
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
