"""Catalog at scale: bulk load N products, then product list latency under 16 concurrent clients,
the same SQL straight through asyncpg in the same run (the ratio is the API's overhead), and a
100,000-row CSV import through the API, against the importer's COPY of as many new rows sent
straight through asyncpg (the database's share of the import).

    uv run python bench/catalog.py [--products 1000000] [--clients 16] [--requests 40]

It starts an embedded PostgreSQL in a temporary folder, migrates it, COPYs the catalog in
(categories 10x10x10, 200 suppliers, 3 warehouses, one stock level per product), builds the
search and sort indexes, then serves the API with `stockroom serve` (a subprocess on a free
127.0.0.1 port) over the same server. Every loop is bounded; nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
from sqlalchemy.dialects import postgresql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import login, percentile, serve
from stockroom.catalog import importer
from stockroom.catalog.repository import (
    product_count_statement,
    product_page_statement,
    subtree_ids,
)
from stockroom.catalog.schemas import ProductFilters
from stockroom.db import migrate
from stockroom.db.base import uuid7
from stockroom.db.embedded import socket_dir_of
from stockroom.db.runtime import resolve_database
from stockroom.http.pagination import Sort
from stockroom.settings import Settings

ADJECTIVES = (
    "Heavy-duty Compact Galvanised Pro Classic Eco Deluxe Industrial Mini Large Small Smart "
    "Rugged Precision Budget Premium Portable Foldable Insulated Reinforced"
).split()
MATERIALS = "steel brass copper aluminium oak pine rubber nylon ceramic glass".split()
NOUNS = (
    "hammer wrench spanner screwdriver pliers chisel saw drill bolt screw nut washer hinge "
    "bracket clamp cable plug socket switch bulb lamp fixture hose nozzle sprinkler rake shovel "
    "trowel bucket ladder tape glue sealant brush roller tray filter valve pipe elbow coupling "
    "gasket fuse relay timer sensor battery charger adapter"
).split()
USES = "workshops kitchens gardens garages offices boats bathrooms roofs".split()
STOCK_WAREHOUSES = ("MAIN", "NORTH", "CITY")
INDEX_SQL_QUERY = """
SELECT indexname, indexdef FROM pg_indexes
WHERE tablename = 'products' AND indexname = ANY($1::text[])
"""
REBUILT_INDEXES = [
    "ix_products_search_trgm",
    "ix_products_name_id",
    "ix_products_sku_id",
    "ix_products_created_at_id",
    "ix_products_sale_price_id",
    "ix_products_category_id_name_id",
    "ix_products_supplier_id",
]


def log(message: str) -> None:
    print(message, flush=True)


def connect_kwargs(server: Any) -> dict[str, Any]:
    return {"user": "postgres", "database": "stockroom", "host": socket_dir_of(server)}


# Loading


async def load(server: Any, products: int, rng: random.Random) -> dict[str, Any]:
    conn = await asyncpg.connect(**connect_kwargs(server))
    now = datetime.now(UTC)
    info: dict[str, Any] = {}
    try:
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute("SET max_parallel_maintenance_workers = 2")
        categories: list[tuple[uuid.UUID, str, uuid.UUID | None]] = []
        mids: list[uuid.UUID] = []
        leaves: list[tuple[uuid.UUID, str]] = []
        for r in range(10):
            root = uuid7()
            categories.append((root, f"Department {r}", None))
            for m in range(10):
                mid = uuid7()
                mids.append(mid)
                categories.append((mid, f"Aisle {r}.{m}", root))
                for leaf_no in range(10):
                    leaf = uuid7()
                    name = f"Shelf {r}.{m}.{leaf_no}"
                    categories.append((leaf, name, mid))
                    leaves.append((leaf, name))
        await conn.copy_records_to_table(
            "categories", records=categories, columns=["id", "name", "parent_id"]
        )
        suppliers = [(uuid7(), f"Supplier {s:03d}") for s in range(200)]
        await conn.copy_records_to_table("suppliers", records=suppliers, columns=["id", "name"])
        warehouses = [(uuid7(), code, f"{code} warehouse") for code in STOCK_WAREHOUSES]
        await conn.copy_records_to_table(
            "warehouses", records=warehouses, columns=["id", "code", "name"]
        )
        definitions = dict(await conn.fetch(INDEX_SQL_QUERY, REBUILT_INDEXES))
        for name in definitions:
            await conn.execute(f'DROP INDEX "{name}"')

        started = time.perf_counter()
        chunk = 50_000
        columns = [
            "id",
            "sku",
            "name",
            "description",
            "category_id",
            "supplier_id",
            "unit",
            "barcode",
            "cost_price",
            "sale_price",
            "reorder_point",
            "reorder_quantity",
            "created_at",
            "updated_at",
        ]
        for start in range(0, products, chunk):
            rows = []
            levels = []
            for i in range(start, min(start + chunk, products)):
                noun = NOUNS[i % len(NOUNS)]
                material = MATERIALS[(i // 7) % len(MATERIALS)]
                model = f"{chr(65 + i % 26)}{chr(65 + (i // 26) % 26)}-{rng.randrange(10000):04d}"
                sale = Decimal(rng.randrange(100, 50000)) / 100
                cost = (sale * Decimal(rng.randrange(30, 90)) / 100).quantize(Decimal("0.01"))
                created = now - timedelta(seconds=rng.randrange(365 * 86400))
                product_id = uuid7()
                rows.append(
                    (
                        product_id,
                        f"SKU-{i:08d}",
                        f"{rng.choice(ADJECTIVES)} {material} {noun} {model}",
                        f"{material.capitalize()} {noun} for {rng.choice(USES)}",
                        leaves[i % len(leaves)][0],
                        suppliers[i % len(suppliers)][0],
                        "each",
                        f"{4000000000000 + i}",
                        cost,
                        sale,
                        rng.choice((5, 10, 20)),
                        rng.choice((20, 50, 100)),
                        created,
                        created,
                    )
                )
                levels.append((product_id, warehouses[i % 3][0], rng.randrange(0, 200)))
            await conn.copy_records_to_table("products", records=rows, columns=columns)
            await conn.copy_records_to_table(
                "stock_levels", records=levels, columns=["product_id", "warehouse_id", "on_hand"]
            )
        copy_s = time.perf_counter() - started
        info["copy_s"] = copy_s
        info["copy_rate"] = products / copy_s
        log(
            f"COPY {products:,} products (+ as many stock levels): {copy_s:.1f} s, "
            f"{products / copy_s:,.0f} products/s"
        )

        started = time.perf_counter()
        for name, definition in definitions.items():
            t0 = time.perf_counter()
            await conn.execute(definition)
            log(f"  index {name}: {time.perf_counter() - t0:.1f} s")
        info["index_s"] = time.perf_counter() - started
        log(f"indexes rebuilt: {info['index_s']:.1f} s")
        t0 = time.perf_counter()
        await conn.execute("VACUUM ANALYZE products, stock_levels, categories")
        log(f"VACUUM ANALYZE: {time.perf_counter() - t0:.1f} s")
        info["mids"] = mids
        info["leaves"] = leaves
        info["suppliers"] = suppliers
    finally:
        await conn.close()
    return info


async def prewarm(server: Any) -> None:
    """Load the catalog tables and indexes into shared buffers, as a serving database has them."""
    conn = await asyncpg.connect(**connect_kwargs(server))
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        relations = await conn.fetch(
            "SELECT c.oid::regclass::text FROM pg_class c "
            "WHERE c.relname IN ('products', 'stock_levels', 'categories') "
            "OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN "
            "('products'::regclass, 'stock_levels'::regclass, 'categories'::regclass))"
        )
        for (relation,) in relations:
            await conn.execute("SELECT pg_prewarm($1::regclass)", relation)
    finally:
        await conn.close()


async def set_shared_buffers(server: Any, size: str) -> None:
    conn = await asyncpg.connect(**connect_kwargs(server))
    try:
        await conn.execute(f"ALTER SYSTEM SET shared_buffers = '{size}'")
    finally:
        await conn.close()


# Measuring


def _process_cpu(pid: str) -> tuple[str, float]:
    """(parent pid, user + system CPU seconds) of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return fields[1], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(server: Any, port: int) -> dict[str, float]:
    """CPU seconds used so far by the API server on `port`, by the PostgreSQL server (postmaster
    and all its backends) and by this process (the load generator); zeros where /proc is not."""
    parts = {"api": 0.0, "postgres": 0.0, "client": time.process_time()}
    proc = Path("/proc")
    if not proc.is_dir():
        return parts
    postmaster = (Path(socket_dir_of(server)) / "postmaster.pid").read_text().split()[0]
    api_cmdline = f"serve\0--port\0{port}\0"
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent, seconds = _process_cpu(entry.name)
            if entry.name == postmaster or parent == postmaster:
                parts["postgres"] += seconds
            elif api_cmdline in (entry / "cmdline").read_text():
                parts["api"] += seconds
        except OSError:
            continue  # the process ended meanwhile
    return parts


class Client:
    """A minimal keep-alive HTTP/1.1 client, so the load generator costs little CPU."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\n\r\n"
        ).encode()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run_load(
    workers: int, requests: int, call: Callable[[int, int], Awaitable[None]]
) -> dict[str, float]:
    """`workers` concurrent loops of `requests` calls each; latency per call."""
    latencies: list[float] = []

    async def worker(w: int) -> None:
        for r in range(requests):
            t0 = time.perf_counter()
            await call(w, r)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    elapsed = time.perf_counter() - started
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


def compiled(
    filters: ProductFilters, category_ids: list[uuid.UUID] | None, limit: int, total: int
) -> tuple[str | None, str, str]:
    """The API's SQL with the values inlined: the category subtree query (if any), the page
    query (for a list of `total` matches) and the count query, as PostgreSQL receives them."""
    dialect = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]
    render = {"literal_binds": True}
    subtree = None
    if filters.category_id is not None:
        subtree = str(
            subtree_ids(filters.category_id).compile(dialect=dialect, compile_kwargs=render)
        )
    count, count_params = product_count_statement(filters, category_ids)
    listing, params = product_page_statement(filters, category_ids, Sort("name"), 0, limit, total)
    return (
        subtree,
        str(listing.params(params).compile(dialect=dialect, compile_kwargs=render)),
        str(count.params(count_params).compile(dialect=dialect, compile_kwargs=render)),
    )


async def scenario(
    name: str,
    queries: list[dict[str, str]],
    server: Any,
    port: int,
    token: str,
    clients: int,
    requests: int,
) -> dict[str, Any]:
    paths = [f"/api/v1/products?{urlencode(q | {'page_size': '50'})}" for q in queries]
    http = [Client(port, token) for _ in range(clients)]
    totals: set[int] = set()

    async def api_call(w: int, r: int) -> None:
        status, body = await http[w].get(paths[(w * requests + r) % len(paths)])
        if status != 200:
            raise RuntimeError(f"{status}: {body[:300]!r}")

    # Warm up (and read the totals, to report how selective the queries are).
    import json

    for path in paths:
        _, body = await http[0].get(path)
        totals.add(json.loads(body)["total"])
    before = cpu_seconds(server, port)
    api = await run_load(clients, requests, api_call)
    after = cpu_seconds(server, port)
    cpu = {part: (after[part] - before[part]) * 1000 / (clients * requests) for part in before}
    single = await run_load(1, max(requests, 30), api_call)
    for c in http:
        await c.close()

    pool = await asyncpg.create_pool(**connect_kwargs(server), min_size=clients, max_size=clients)
    assert pool is not None
    statements = []
    for q in queries:
        filters = ProductFilters(
            q=q.get("q"),
            category_id=uuid.UUID(q["category_id"]) if "category_id" in q else None,
        )
        subtree, _, count = compiled(filters, None, 50, 0)
        category_ids = None
        if subtree is not None:
            category_ids = [row[0] for row in await pool.fetch(subtree)]
        _, _, count = compiled(filters, category_ids, 50, 0)
        total = await pool.fetchval(count)
        statements.append(compiled(filters, category_ids, 50, total))

    async def sql_call(w: int, r: int) -> None:
        # As the API does: the subtree, the count, then the page if there is one.
        subtree, listing, count = statements[(w * requests + r) % len(statements)]
        async with pool.acquire() as conn, conn.transaction():
            if subtree is not None:
                await conn.fetch(subtree)
            if await conn.fetchval(count):
                await conn.fetch(listing)

    for _, listing, count in statements:
        async with pool.acquire() as conn:
            await conn.fetch(listing)
            await conn.fetchval(count)
    sql = await run_load(clients, requests, sql_call)
    await pool.close()
    result = {
        "name": name,
        "api": api,
        "sql": sql,
        "single": single,
        "totals": sorted(totals),
        "cpu": cpu,
    }
    log(
        f"{name}: matches {min(totals):,}..{max(totals):,}\n"
        f"  API {api['rps']:7.1f} req/s p50 {api['p50_ms']:6.1f} ms p99 {api['p99_ms']:6.1f} ms\n"
        f"  SQL {sql['rps']:7.1f} q/s   p50 {sql['p50_ms']:6.1f} ms p99 {sql['p99_ms']:6.1f} ms\n"
        f"  API/SQL throughput ratio {api['rps'] / sql['rps']:.2f} (target >= 0.5), "
        f"p99 ratio {api['p99_ms'] / sql['p99_ms']:.2f} (target <= 1.5)\n"
        f"  API, 1 client: p50 {single['p50_ms']:.1f} ms p99 {single['p99_ms']:.1f} ms\n"
        f"  CPU per API request (16 clients): API {cpu['api']:.2f} ms, PostgreSQL "
        f"{cpu['postgres']:.2f} ms, load generator {cpu['client']:.2f} ms; at most "
        f"{os.cpu_count() or 1} cores / {sum(cpu.values()):.2f} ms = "
        f"{(os.cpu_count() or 1) * 1000 / sum(cpu.values()):.0f} req/s"
    )
    return result


def import_csv(rows: int, leaves: list[tuple[uuid.UUID, str]], rng: random.Random) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "sku",
            "name",
            "description",
            "category",
            "supplier",
            "barcode",
            "cost_price",
            "sale_price",
            "reorder_point",
            "reorder_quantity",
        ]
    )
    for i in range(rows):
        sale = Decimal(rng.randrange(100, 50000)) / 100
        writer.writerow(
            [
                f"IMP-{i:07d}",
                f"Imported {NOUNS[i % len(NOUNS)]} {i}",
                f"Bulk imported {MATERIALS[i % len(MATERIALS)]} item",
                leaves[i % len(leaves)][1],
                f"Supplier {i % 200:03d}",
                f"{9000000000000 + i}",
                f"{sale / 2:.2f}",
                f"{sale:.2f}",
                "10",
                "50",
            ]
        )
    return buffer.getvalue().encode()


def timed_import(base: str, token: str, content: bytes) -> tuple[float, dict[str, Any]]:
    import httpx

    t0 = time.perf_counter()
    response = httpx.post(
        f"{base}/api/v1/products/import",
        files={"file": ("products.csv", content, "text/csv")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=900,
    )
    elapsed = time.perf_counter() - t0
    if response.status_code != 200:
        raise RuntimeError(f"import failed: {response.status_code} {response.text[:500]}")
    return elapsed, response.json()


async def raw_insert_rate(
    server: Any, rows: int, leaves: list[tuple[uuid.UUID, str]], rng: random.Random
) -> float:
    """Rows/s of the importer's own write (a COPY of the new products) sent straight through
    asyncpg: the same kind of rows as the CSV (new skus, categories and suppliers resolved to
    ids), in batches of the importer's size, in one transaction that is rolled back so the
    catalog stays as it was. Only the COPYs are timed: the database's share of an import."""
    conn = await asyncpg.connect(**connect_kwargs(server))
    try:
        suppliers = {name: id_ for id_, name in await conn.fetch("SELECT id, name FROM suppliers")}
        values: list[dict[str, Any]] = []
        for i in range(rows):
            sale = Decimal(rng.randrange(100, 50000)) / 100
            values.append(
                {
                    "id": uuid7(),
                    "sku": f"RAW-{i:07d}",
                    "name": f"Imported {NOUNS[i % len(NOUNS)]} {i}",
                    "description": f"Bulk imported {MATERIALS[i % len(MATERIALS)]} item",
                    "category_id": leaves[i % len(leaves)][0],
                    "supplier_id": suppliers[f"Supplier {i % 200:03d}"],
                    "unit": "each",
                    "barcode": f"{8000000000000 + i}",
                    "cost_price": sale / 2,
                    "sale_price": sale,
                    "reorder_point": 10,
                    "reorder_quantity": 50,
                    "is_active": True,
                }
            )
        transaction = conn.transaction()
        await transaction.start()
        try:
            started = time.perf_counter()
            for first in range(0, rows, importer.BATCH_ROWS):
                batch = values[first : first + importer.BATCH_ROWS]
                await conn.copy_records_to_table(
                    "products",
                    records=[tuple(v[name] for name in importer.COPY_COLUMNS) for v in batch],
                    columns=importer.COPY_COLUMNS,
                )
            elapsed = time.perf_counter() - started
        finally:
            await transaction.rollback()
        return rows / elapsed
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=40, help="per client and scenario")
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument(
        "--skip-import", action="store_true", help="only the list scenarios, no CSV import"
    )
    parser.add_argument(
        "--shared-buffers", default="1GB", help="PostgreSQL shared_buffers ('' keeps the default)"
    )
    args = parser.parse_args()
    rng = random.Random(42)
    root = Path(tempfile.mkdtemp(prefix="stockroom-bench-catalog-"))
    data_dir = root / "data"
    target = None
    try:
        settings = Settings(_env_file=None, stockroom_data_dir=data_dir)  # type: ignore[call-arg]
        target = resolve_database(settings)
        migrate.upgrade(target.url)  # outside any event loop: Alembic runs its own
        server = target.embedded_server
        log(f"embedded PostgreSQL in {data_dir}; loading {args.products:,} products")
        info = asyncio.run(load(server, args.products, rng))
        if args.shared_buffers:
            # PostgreSQL's default (128 MB) is sized for a laptop; any server holding a
            # million-product catalog gives it a good share of its memory.
            asyncio.run(set_shared_buffers(server, args.shared_buffers))
            server.cleanup()
            target = resolve_database(settings)
            server = target.embedded_server
            log(f"restarted PostgreSQL with shared_buffers = {args.shared_buffers}")
        t0 = time.perf_counter()
        asyncio.run(prewarm(server))
        log(f"pg_prewarm of the catalog tables and indexes: {time.perf_counter() - t0:.1f} s")
        with serve(data_dir, ACCESS_TOKEN_EXPIRE_MINUTES="240", RELAY_ENABLED="false") as (
            base,
            _,
        ):
            port = int(base.rsplit(":", 1)[1])
            token = login(base)
            mids = [str(m) for m in rng.sample(info["mids"], 8)]
            selective = [f"{rng.randrange(10000):04d}" for _ in range(8)]
            words = ["hammer", "copper hinge", "sprinkler", "oak ladder"]
            results = []
            for name, queries in (
                ("q=<4-digit substring> (name/barcode)", [{"q": q} for q in selective]),
                ("q=<word or two words>", [{"q": q} for q in words]),
                ("category_id=<aisle: 10 shelves>", [{"category_id": m} for m in mids]),
            ):
                results.append(
                    asyncio.run(
                        scenario(name, queries, server, port, token, args.clients, args.requests)
                    )
                )
            if not args.skip_import:
                content = import_csv(args.import_rows, info["leaves"], rng)
                elapsed, counts = timed_import(base, token, content)
                log(
                    f"import {args.import_rows:,} rows ({len(content) / 1e6:.1f} MB) "
                    "through the API: "
                    f"{elapsed:.1f} s, {args.import_rows / elapsed:,.0f} rows/s {counts}"
                )
                elapsed_again, counts_again = timed_import(base, token, content)
                log(
                    f"re-import of the same file: {elapsed_again:.1f} s, "
                    f"{args.import_rows / elapsed_again:,.0f} rows/s {counts_again}"
                )
                raw_rate = asyncio.run(
                    raw_insert_rate(server, args.import_rows, info["leaves"], rng)
                )
                api_rate = args.import_rows / elapsed
                log(
                    f"the importer's COPY alone, straight through asyncpg: {raw_rate:,.0f} rows/s "
                    f"(import through the API / COPY alone: {api_rate / raw_rate:.2f})"
                )
        log(
            "\n| scenario | matches | API req/s | API p50 | API p99 | SQL q/s | SQL p50 | "
            "SQL p99 | API/SQL (>= 0.5) | p99 API/SQL (<= 1.5) | API 1 client p50 / p99 |"
        )
        log("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            a, s = r["api"], r["sql"]
            log(
                f"| {r['name']} | {min(r['totals']):,}-{max(r['totals']):,} | {a['rps']:.0f} | "
                f"{a['p50_ms']:.1f} ms | {a['p99_ms']:.1f} ms | {s['rps']:.0f} | "
                f"{s['p50_ms']:.1f} ms | {s['p99_ms']:.1f} ms | {a['rps'] / s['rps']:.2f} | "
                f"{a['p99_ms'] / s['p99_ms']:.2f} | "
                f"{r['single']['p50_ms']:.1f} / {r['single']['p99_ms']:.1f} ms |"
            )
        cores = os.cpu_count() or 1
        log(
            "\n| scenario | CPU per request: API | PostgreSQL | load generator | "
            f"{cores} cores / CPU per request | {args.clients} clients / that |"
        )
        log("|---|---|---|---|---|---|")
        for r in results:
            c = r["cpu"]
            ceiling = cores * 1000 / sum(c.values())
            log(
                f"| {r['name']} | {c['api']:.2f} ms | {c['postgres']:.2f} ms | "
                f"{c['client']:.2f} ms | {ceiling:.0f} req/s | "
                f"{args.clients * 1000 / ceiling:.0f} ms |"
            )
    finally:
        if target is not None and target.embedded_server is not None:
            target.embedded_server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
