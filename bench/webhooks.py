"""Webhooks end to end: the API posting stock movements at a steady rate, with and without 3
endpoints subscribed to `stock.*`, delivering to a receiver on 127.0.0.1.

    uv run python bench/webhooks.py [--rate 200] [--seconds 15] [--endpoints 3]
        [--dispatcher separate|in-process] [--relay off|on]
    uv run python bench/webhooks.py --backlog 1000     # the dispatcher alone: drain a backlog

Starts `stockroom serve` (embedded PostgreSQL, private targets allowed for the local receiver)
and, in this process, a minimal HTTP/1.1 keep-alive receiver that answers 204 to everything.

- `--dispatcher separate` (default): the API runs with `WEBHOOK_DISPATCHER_ENABLED=false` and a
  `stockroom relay` process on the same database runs the dispatcher (a deployment that
  separates the API from its background work); `in-process`: the dispatcher inside `serve`.
- `--relay off` (default): `RELAY_ENABLED=false`, no events copied to the event store. With
  MONGODB_URL unset the store is mongomock inside the API process, whose writes cost the API
  ~2.5 ms CPU per movement (an artifact of the embedded store: production relays to MongoDB,
  from `stockroom relay` or the API). Deliveries do not depend on the relay: PostgreSQL fans
  events out to deliveries in the posting transaction. `on`: the in-process relay runs.

Then, in one run:

1. without subscriptions: `--seconds` of `POST /stock-movements` (receipts of 1 unit over 50
   products) started at `--rate` per second;
2. the same with `--endpoints` endpoints subscribed to `stock.*`.

Printed: the configuration; per phase the POST latency p50/p99 and the CPU the API process,
PostgreSQL and the separate dispatcher process spent per movement (the write path's cost, and
its ratio with/without subscriptions); the dispatcher's CPU per delivery; for phase 2 the
deliveries per second while the load ran and the commit-to-delivery delay p50/p99/max of the
movements' events, for every (movement, endpoint): from the event's `occurred_at` (set inside
the posting transaction, so at most the transaction's tail before its commit) to the delivery's
arrival, on the same clock. Every loop is bounded; nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import CpuMeter, cli_process, cpu_seconds, login, percentile, serve_process

PRODUCTS = 50
DRAIN_TIMEOUT_S = 60.0


@dataclass
class Receiver:
    """Deliveries as they arrive: (path, event id) -> arrival (unix time)."""

    arrivals: dict[tuple[str, str], float] = field(default_factory=dict)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> event
    duplicates: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                now = time.time()  # compared with the events' `occurred_at`
                key = (path, headers.get("webhook-id", ""))
                if key in self.arrivals:
                    self.duplicates += 1
                else:
                    self.arrivals[key] = now
                    if key[1] not in self.bodies:
                        self.bodies[key[1]] = json.loads(body)
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the dispatcher closed the connection, or this bench is ending
        finally:
            writer.close()


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    acked: dict[str, float] = field(default_factory=dict)  # movement id -> 201 arrival
    failures: int = 0
    cpu_api_s: float = 0.0
    cpu_pg_s: float = 0.0
    cpu_dispatcher_s: float = 0.0
    started: float = 0.0
    ended: float = 0.0


async def post_at_rate(
    client: httpx.AsyncClient, rate: float, seconds: float, products: list[str], warehouse: str
) -> Phase:
    phase = Phase()
    count = int(rate * seconds)
    gate = asyncio.Semaphore(256)

    async def one(i: int, due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        async with gate:
            started = time.monotonic()
            try:
                response = await client.post(
                    "/stock-movements",
                    json={"product_id": products[i % len(products)], "warehouse_id": warehouse,
                          "type": "receipt", "quantity": 1},
                )  # fmt: skip
            except httpx.TransportError:  # an overloaded server dropped the connection
                phase.failures += 1
                return
            done = time.monotonic()
        if response.status_code != 201:
            phase.failures += 1
            return
        phase.latencies.append(done - started)
        phase.acked[response.json()["id"]] = done

    phase.started = time.monotonic()
    await asyncio.gather(*(one(i, phase.started + i / rate) for i in range(count)))
    phase.ended = time.monotonic()
    return phase


def movement_of(event: dict[str, Any]) -> str | None:
    """The movement an event is about (its entity, or a `movement_id` in its data)."""
    data = event.get("data") or {}
    for candidate in (data.get("movement_id"), (event.get("entity") or {}).get("id")):
        if candidate:
            return str(candidate)
    return None


async def run(args: argparse.Namespace) -> None:
    load_before = f"{os.getloadavg()[0]:.2f}"
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    separate = args.dispatcher == "separate"
    env = {
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "RELAY_ENABLED": "true" if args.relay == "on" else "false",
        "WEBHOOK_DISPATCHER_ENABLED": "false" if separate else "true",
    }
    with contextlib.ExitStack() as stack:
        base, data_dir, pid = stack.enter_context(serve_process(None, **env))
        dispatcher_pid = (
            stack.enter_context(
                cli_process(data_dir, "relay", WEBHOOK_ALLOW_PRIVATE_TARGETS="true")
            )
            if separate
            else None
        )
        token = await asyncio.to_thread(login, base)
        meter = CpuMeter(pid, data_dir)

        def dispatcher_cpu() -> float:
            return cpu_seconds(dispatcher_pid) if dispatcher_pid else 0.0

        # Idle connections are dropped before the server drops them (uvicorn: after 5 s).
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2)
        async with httpx.AsyncClient(
            base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"},
            timeout=30, limits=limits,
        ) as client:  # fmt: skip
            warehouse = (
                await client.post("/warehouses", json={"code": "WHB", "name": "Bench"})
            ).json()["id"]
            products = []
            for n in range(PRODUCTS):
                created = await client.post(
                    "/products",
                    json={"sku": f"B-{n}-{uuid.uuid4().hex[:6]}", "name": f"Bench {n}",
                          "cost_price": "1.00", "sale_price": "2.00"},
                )  # fmt: skip
                products.append(created.json()["id"])
            # Warm-up: connections, caches, the first plans.
            await post_at_rate(client, args.rate, 2, products, warehouse)

            phases: dict[str, Phase] = {}
            for name in ("without", "with"):
                if name == "with":
                    for n in range(args.endpoints):
                        created = await client.post(
                            "/webhooks",
                            json={"url": f"http://127.0.0.1:{port}/hook/{n}",
                                  "event_types": ["stock.*"]},
                        )  # fmt: skip
                        assert created.status_code == 201, created.text
                api_before, pg_before = meter.read()
                dispatcher_before = dispatcher_cpu()
                phases[name] = await post_at_rate(
                    client, args.rate, args.seconds, products, warehouse
                )
                api_after, pg_after = meter.read()
                phases[name].cpu_api_s = api_after - api_before
                phases[name].cpu_pg_s = pg_after - pg_before
                phases[name].cpu_dispatcher_s = dispatcher_cpu() - dispatcher_before

            with_phase = phases["with"]
            expected = len(with_phase.acked) * args.endpoints
            deadline = time.monotonic() + DRAIN_TIMEOUT_S

            def delivered() -> list[float]:
                """Seconds from each event's `occurred_at` (set in the transaction, so just
                before its commit) to its delivery's arrival, per endpoint."""
                delays = []
                for (_path, event_id), arrived in receiver.arrivals.items():
                    event = receiver.bodies.get(event_id, {})
                    if movement_of(event) in with_phase.acked:
                        occurred = datetime.fromisoformat(event["occurred_at"]).timestamp()
                        delays.append(arrived - occurred)
                return delays

            while len(delivered()) < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            delays = delivered()
            posting_ended = time.time() - (time.monotonic() - with_phase.ended)
            during = [
                t for (_p, e), t in receiver.arrivals.items()
                if movement_of(receiver.bodies.get(e, {})) in with_phase.acked
                and t <= posting_ended
            ]  # fmt: skip
    server.close()

    print(f"rate {args.rate:g}/s for {args.seconds:g} s per phase, {PRODUCTS} products, "
          f"{args.endpoints} endpoints on stock.* in phase 2")  # fmt: skip
    print(
        "configuration: dispatcher "
        + ("in a separate `stockroom relay` process (API: WEBHOOK_DISPATCHER_ENABLED=false)"
           if separate else "inside `stockroom serve`")
        + "; relay to the in-process event store "
        + ("on (mongomock in the API process)" if args.relay == "on" else
           "off (RELAY_ENABLED=false)")
        + f"; load average before {load_before}, after {os.getloadavg()[0]:.2f}"
    )  # fmt: skip
    print(f"{'phase':<22}{'movements':>10}{'fail':>6}{'POST p50':>10}{'POST p99':>10}"
          f"{'API cpu/mv':>12}{'PG cpu/mv':>11}{'disp cpu/mv':>13}")  # fmt: skip
    for name, phase in phases.items():
        n = max(1, len(phase.latencies))
        print(
            f"{name + ' subscriptions':<22}{len(phase.latencies):>10}{phase.failures:>6}"
            f"{percentile(phase.latencies, 0.5) * 1000:>8.1f}ms"
            f"{percentile(phase.latencies, 0.99) * 1000:>8.1f}ms"
            f"{phase.cpu_api_s / n * 1000:>10.2f}ms{phase.cpu_pg_s / n * 1000:>9.2f}ms"
            f"{phase.cpu_dispatcher_s / n * 1000:>11.2f}ms"
        )
    without, with_ = phases["without"], phases["with"]

    def per_movement(p: Phase) -> float:
        return (p.cpu_api_s + p.cpu_pg_s + p.cpu_dispatcher_s) / max(1, len(p.latencies))

    print(
        f"write path with/without subscriptions: POST p50 x"
        f"{percentile(with_.latencies, 0.5) / percentile(without.latencies, 0.5):.2f}, "
        f"p99 x{percentile(with_.latencies, 0.99) / percentile(without.latencies, 0.99):.2f}, "
        f"CPU (API + PostgreSQL + dispatcher) per movement "
        f"x{per_movement(with_) / per_movement(without):.2f}"
    )
    span = with_.ended - with_.started
    deliveries = max(1, len(delays))
    print(
        f"dispatcher CPU per delivery: {with_.cpu_dispatcher_s / deliveries * 1000:.2f} ms"
        if separate
        else "dispatcher CPU per delivery: inside the API's (use --dispatcher separate)"
    )
    print(
        f"deliveries: {len(delays)}/{expected} delivered, {receiver.duplicates} duplicates; "
        f"{len(during) / span:.0f} deliveries/s while posting "
        f"({len(with_.acked) / span:.0f} movements/s x {args.endpoints} endpoints)"
    )
    if delays:
        print(
            "commit-to-delivery (event recorded -> delivery received): "
            f"p50 {statistics.median(delays) * 1000:.0f} ms, "
            f"p99 {percentile(delays, 0.99) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
            f"(target p99 < 1000 ms at 200 events/s)"
        )


async def drain(args: argparse.Namespace) -> None:
    """`--backlog N`: N movements x `--endpoints` deliveries pending with no dispatcher running,
    then a `stockroom relay` started to deliver them all: its CPU per delivery and the rate,
    without the API's load beside it."""
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    env = {"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "RELAY_ENABLED": "false",
           "WEBHOOK_DISPATCHER_ENABLED": "false"}  # fmt: skip
    expected = args.backlog * args.endpoints
    with serve_process(None, **env) as (base, data_dir, pid):
        token = await asyncio.to_thread(login, base)
        async with httpx.AsyncClient(
            base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            warehouse = (
                await client.post("/warehouses", json={"code": "WHB", "name": "Bench"})
            ).json()["id"]
            product = (
                await client.post("/products", json={"sku": f"B-{uuid.uuid4().hex[:6]}",
                                  "name": "Bench", "cost_price": "1.00", "sale_price": "2.00"})
            ).json()["id"]  # fmt: skip
            for n in range(args.endpoints):
                created = await client.post(
                    "/webhooks", json={"url": f"http://127.0.0.1:{port}/hook/{n}",
                                       "event_types": ["stock.*"]},
                )  # fmt: skip
                assert created.status_code == 201, created.text
            gate = asyncio.Semaphore(16)

            async def one() -> None:
                async with gate:
                    posted = await client.post(
                        "/stock-movements", json={"product_id": product,
                        "warehouse_id": warehouse, "type": "receipt", "quantity": 1},
                    )  # fmt: skip
                    assert posted.status_code == 201, posted.text

            await asyncio.gather(*(one() for _ in range(args.backlog)))
        meter = CpuMeter(pid, data_dir)
        with cli_process(data_dir, "relay", WEBHOOK_ALLOW_PRIVATE_TARGETS="true") as relay_pid:
            cpu_before, (_, pg_before), started = (
                cpu_seconds(relay_pid),
                meter.read(),
                time.monotonic(),
            )
            while (
                len(receiver.arrivals) < expected and time.monotonic() - started < DRAIN_TIMEOUT_S
            ):
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(relay_pid) - cpu_before
            pg = meter.read()[1] - pg_before
    server.close()
    got = len(receiver.arrivals)
    print(f"backlog drain: {got}/{expected} deliveries ({args.backlog} movements x "
          f"{args.endpoints} endpoints) in {elapsed:.2f} s = {got / elapsed:.0f}/s, "
          f"{receiver.duplicates} duplicates; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"CPU per delivery: dispatcher (`stockroom relay`) {cpu / max(1, got) * 1000:.2f} ms, "
          f"PostgreSQL {pg / max(1, got) * 1000:.2f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--endpoints", type=int, default=3)
    parser.add_argument("--dispatcher", choices=("separate", "in-process"), default="separate")
    parser.add_argument("--relay", choices=("off", "on"), default="off")
    parser.add_argument(
        "--backlog", type=int, default=0,
        help="instead: N movements' deliveries left pending, then drained by a stockroom relay",
    )  # fmt: skip
    args = parser.parse_args()
    asyncio.run(drain(args) if args.backlog else run(args))


if __name__ == "__main__":
    main()
