"""Mixed load from several client processes for a fixed time, then a consistency audit.

    uv run python bench/load.py [--seconds 30] [--processes 4] [--concurrency 8]

Traffic: 70% reads (product list and search, product detail, stock levels), 25% sales and
receipts, 5% transfers (created, then completed or cancelled) and stock counts. Afterwards it runs
`stockroom stock check` and compares the event store with the outbox, and prints throughput,
p50/p99 latency, error counts by status, and "0 drift, 0 events lost" or what was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx

from _harness import login, percentile, run_cli, serve


def pick_operation(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.70:
        return rng.choice(["list_products", "search_products", "product_detail", "stock_levels"])
    if roll < 0.95:
        return "sale" if roll < 0.85 else "receipt"
    return "transfer" if roll < 0.98 else "count"


async def one_request(
    c: httpx.AsyncClient, op: str, rng: random.Random, world: dict[str, Any]
) -> int:
    product = rng.choice(world["products"])
    warehouse = rng.choice(world["warehouses"])
    if op == "list_products":
        return (
            await c.get("/products", params={"page_size": 20, "sort": "-created_at"})
        ).status_code
    if op == "search_products":
        return (
            await c.get("/products", params={"q": rng.choice(["bolt", "12", "nut"])})
        ).status_code
    if op == "product_detail":
        return (await c.get(f"/products/{product}")).status_code
    if op == "stock_levels":
        return (await c.get("/stock", params={"product_id": product})).status_code
    if op in {"sale", "receipt"}:
        body = {"product_id": product, "warehouse_id": warehouse, "type": op,
                "quantity": rng.randint(1, 3)}  # fmt: skip
        return (await c.post("/stock-movements", json=body)).status_code
    if op == "transfer":
        destination = rng.choice([w for w in world["warehouses"] if w != warehouse])
        created = await c.post(
            "/stock-transfers",
            json={"product_id": product, "from_warehouse_id": warehouse,
                  "to_warehouse_id": destination, "quantity": 1},
        )  # fmt: skip
        if created.status_code != 201:
            return created.status_code
        action = "complete" if rng.random() < 0.7 else "cancel"
        return (await c.post(f"/stock-transfers/{created.json()['id']}/{action}")).status_code
    counted = rng.randint(0, 200)
    body = {"product_id": product, "warehouse_id": warehouse, "counted_quantity": counted}
    return (await c.post("/stock-counts", json=body)).status_code


async def client_loop(
    base: str, token: str, world: dict[str, Any], seconds: float, concurrency: int, seed: int
) -> dict[str, Any]:
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency)

    async with httpx.AsyncClient(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"},
        timeout=30, limits=limits,
    ) as c:  # fmt: skip

        async def worker(worker_seed: int) -> None:
            rng = random.Random(worker_seed)
            while time.monotonic() < deadline:
                op = pick_operation(rng)
                started = time.perf_counter()
                try:
                    status = await one_request(c, op, rng, world)
                except httpx.HTTPError as exc:
                    statuses[f"{op}:{type(exc).__name__}"] += 1
                    continue
                latencies[op].append(time.perf_counter() - started)
                statuses[f"{op}:{status}"] += 1

        await asyncio.gather(*(worker(seed * 1000 + i) for i in range(concurrency)))
    return {"latencies": dict(latencies), "statuses": dict(statuses)}


def run_client_process(args: tuple[str, str, dict[str, Any], float, int, int]) -> dict[str, Any]:
    return asyncio.run(client_loop(*args))


def setup_world(base: str, token: str, products: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=30) as c:
        warehouses = [
            c.post("/warehouses", json={"code": f"LD{i}", "name": f"Load {i}"}).json()["id"]
            for i in range(3)
        ]
        ids = []
        for i in range(products):
            created = c.post(
                "/products",
                json={"sku": f"LOAD-{i:05d}", "name": f"Load bolt {i}", "cost_price": "1.00",
                      "sale_price": "2.50", "reorder_point": 20},
            )  # fmt: skip
            created.raise_for_status()
            ids.append(created.json()["id"])
            for warehouse in warehouses:
                c.post(
                    "/stock-movements",
                    json={"product_id": ids[-1], "warehouse_id": warehouse, "type": "receipt",
                          "quantity": 100},
                ).raise_for_status()  # fmt: skip
    return {"warehouses": warehouses, "products": ids}


def all_event_ids(base: str, token: str) -> list[str]:
    ids: list[str] = []
    params: dict[str, Any] = {"limit": 500}
    with httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as c:
        while True:
            page = c.get("/activity", params=params)
            page.raise_for_status()
            body = page.json()
            ids.extend(item["id"] for item in body["items"])
            if not body.get("next_cursor"):
                return ids
            params["cursor"] = body["next_cursor"]


def outbox_ids(data_dir: Path) -> set[str]:
    result = run_cli(data_dir, "psql", "-c", "SELECT id FROM outbox_events")
    result.check_returncode()
    return {line for line in result.stdout.splitlines() if line}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per process")
    parser.add_argument("--products", type=int, default=50)
    args = parser.parse_args()

    with serve() as (base, data_dir):
        token = login(base)
        print(f"setting up {args.products} products x 3 warehouses ...", flush=True)
        world = setup_world(base, token, args.products)
        print(f"load: {args.processes} processes x {args.concurrency} in flight, "
              f"{args.seconds:.0f} s", flush=True)  # fmt: skip
        started = time.monotonic()
        jobs = [
            (base, token, world, args.seconds, args.concurrency, seed)
            for seed in range(args.processes)
        ]
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            results = pool.map(run_client_process, jobs)
        elapsed = time.monotonic() - started

        latencies: dict[str, list[float]] = defaultdict(list)
        statuses: Counter[str] = Counter()
        for result in results:
            for op, values in result["latencies"].items():
                latencies[op].extend(values)
            statuses.update(result["statuses"])
        total = sum(len(v) for v in latencies.values())
        every = [x for values in latencies.values() for x in values]
        print(f"\nthroughput: {total / elapsed:,.0f} requests/s ({total:,} in {elapsed:.1f} s)")
        print(f"latency all: p50 {percentile(every, 0.5) * 1000:.1f} ms, "
              f"p99 {percentile(every, 0.99) * 1000:.1f} ms")  # fmt: skip
        for op in sorted(latencies):
            values = latencies[op]
            print(f"  {op:16s} n={len(values):6d} p50 {percentile(values, 0.5) * 1000:7.1f} ms"
                  f"  p99 {percentile(values, 0.99) * 1000:7.1f} ms")  # fmt: skip
        print("status counts:")
        for key, count in sorted(statuses.items()):
            print(f"  {key:28s} {count}")
        server_errors = sum(c for k, c in statuses.items() if k.split(":")[1].startswith("5"))

        check = run_cli(data_dir, "stock", "check")
        drift = 0 if check.returncode == 0 else max(1, check.stdout.count("\n"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready = httpx.get(f"{base}/api/v1/health/ready").json()
            if ready["outbox_backlog"] == 0:
                break
            time.sleep(0.5)
        stored = all_event_ids(base, token)
        outbox = outbox_ids(data_dir)
        lost = len(outbox - set(stored))
        duplicated = len(stored) - len(set(stored))
        print(f"\n{drift} drift, {lost} events lost, {duplicated} duplicated, "
              f"{server_errors} server errors ({len(outbox):,} events)")  # fmt: skip
        if check.returncode != 0:
            print(check.stdout + check.stderr)
        return 0 if drift == 0 and lost == 0 and duplicated == 0 and server_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
