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
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import CpuMeter, cli_process, cpu_seconds, login, percentile, serve_process

PRODUCTS = 50
DRAIN_TIMEOUT_S = 60.0


# --- the receiver: its own process (uvloop, a bare protocol), so that its CPU is measured
# apart and does not share an event loop with the load generator --------------------------------


class _ReceiverProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive: every request answered 204 at once; (path, webhook-id) -> arrival."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = 0
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = self.buffer[:head_end].decode("latin-1")
            lines = head.split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:])
            }
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < head_end + 4 + length:
                break
            body = self.buffer[head_end + 4 : head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length :]
            key = (lines[0].split(" ")[1], headers.get("webhook-id", ""))
            arrivals, bodies = self.state["arrivals"], self.state["bodies"]
            if key in arrivals:
                self.state["duplicates"] += 1
            else:
                arrivals[key] = time.time()  # compared with the events' `occurred_at`
                bodies.setdefault(key[1], body)  # parsed at the end, not here
            replies += 1
        if replies and self.transport is not None:
            self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n" * replies)


def _receiver_main(conn: Connection) -> None:
    import uvloop

    state: dict[str, Any] = {"arrivals": {}, "bodies": {}, "duplicates": 0}

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _ReceiverProtocol(state), "127.0.0.1", 0)
        conn.send(server.sockets[0].getsockname()[1])
        stop = asyncio.Event()

        def on_command() -> None:
            os.set_blocking(conn.fileno(), True)  # the loop's reader made it non-blocking
            command = conn.recv()
            if command == "count":
                conn.send(len(state["arrivals"]))
            elif command == "dump":
                conn.send(state)
                stop.set()

        loop.add_reader(conn.fileno(), on_command)
        await stop.wait()
        server.close()

    uvloop.run(serve())


class Receiver:
    """The receiver process, driven over a pipe."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # no copy of this process's loop
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_receiver_main, args=(child,), daemon=True)
        self.process.start()
        self.port: int = self.conn.recv()
        assert self.process.pid is not None
        self.pid = self.process.pid

    def count(self) -> int:
        self.conn.send("count")
        return int(self.conn.recv())

    def dump(self) -> tuple[dict[tuple[str, str], float], dict[str, dict[str, Any]], int]:
        """Arrivals, the first body of each event (parsed), duplicates; ends the process."""
        self.conn.send("dump")
        state = self.conn.recv()
        self.process.join(10)
        bodies = {k: json.loads(v) for k, v in state["bodies"].items()}
        return state["arrivals"], bodies, state["duplicates"]


# --- the load generator: pre-encoded requests on raw keep-alive connections, one in flight
# each, started on a precise schedule (httpx cost the bench ~1 ms CPU per request) ------------


class _ClientProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[: head_end + 2].lower()  # every header line ends with CRLF
        at = head.find(b"content-length:")
        length = int(head[at + 15 : head.find(b"\r\n", at)]) if at >= 0 else 0
        if len(self.buffer) < head_end + 4 + length:
            return
        status = int(self.buffer[9:12])
        body = self.buffer[head_end + 4 : head_end + 4 + length]
        self.buffer = self.buffer[head_end + 4 + length :]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, body))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        async with asyncio.timeout(60):  # bounded: a lost response fails, never hangs the run
            return await self.waiter


def movement_request(host: str, token: str, product: str, warehouse: str) -> bytes:
    body = json.dumps({"product_id": product, "warehouse_id": warehouse, "type": "receipt",
                       "quantity": 1}).encode()  # fmt: skip
    return (
        f"POST /api/v1/stock-movements HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {token}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)  # from each request's due time
    acked: dict[str, float] = field(default_factory=dict)  # movement id -> 201 arrival
    failures: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds
    started: float = 0.0
    ended: float = 0.0
    late_starts: int = 0  # requests that waited > 10 ms past their due time for a connection


async def post_at_rate(
    base: str, token: str, rate: float, seconds: float, products: list[str], warehouse: str,
    connections: int = 64,
) -> Phase:  # fmt: skip
    """Open loop: request i is due at start + i / rate whatever the earlier ones did; its
    latency counts from then (waiting for a free connection included)."""
    host, port = base.removeprefix("http://").split(":")
    requests = [movement_request(f"{host}:{port}", token, p, warehouse) for p in products]
    loop = asyncio.get_running_loop()
    free: asyncio.Queue[_ClientProtocol] = asyncio.Queue()
    for _ in range(connections):
        _t, protocol = await loop.create_connection(_ClientProtocol, host, int(port))
        free.put_nowait(protocol)
    phase = Phase()
    count = int(rate * seconds)
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        protocol = await free.get()
        if time.monotonic() - due > 0.01:
            phase.late_starts += 1
        try:
            status, body = await protocol.request(requests[i % len(requests)])
        except (ConnectionError, TimeoutError):  # dropped or lost: a new connection
            phase.failures += 1
            if protocol.transport is not None:
                protocol.transport.close()
            _t, protocol = await loop.create_connection(_ClientProtocol, host, int(port))
            free.put_nowait(protocol)
            return
        done = time.monotonic()
        free.put_nowait(protocol)
        if status != 201:
            phase.failures += 1
            return
        phase.latencies.append(done - due)
        phase.acked[json.loads(body)["id"]] = done

    phase.started = time.monotonic()
    for i in range(count):
        due = phase.started + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    phase.ended = time.monotonic()
    while not free.empty():
        protocol = free.get_nowait()
        if protocol.transport is not None:
            protocol.transport.close()
    return phase


def movement_of(event: dict[str, Any]) -> str | None:
    """The movement an event is about (its entity, or a `movement_id` in its data)."""
    data = event.get("data") or {}
    for candidate in (data.get("movement_id"), (event.get("entity") or {}).get("id")):
        if candidate:
            return str(candidate)
    return None


PROCESSES = ("API", "PostgreSQL", "dispatcher", "receiver", "load generator")


async def run(args: argparse.Namespace) -> None:
    load_before = f"{os.getloadavg()[0]:.2f}"
    receiver = Receiver()
    port = receiver.port
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

        def cpu() -> dict[str, float]:
            api, pg = meter.read()
            return {
                "API": api,
                "PostgreSQL": pg,
                "dispatcher": cpu_seconds(dispatcher_pid) if dispatcher_pid else 0.0,
                "receiver": cpu_seconds(receiver.pid),
                "load generator": time.process_time(),
            }

        async with httpx.AsyncClient(
            base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
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
            await post_at_rate(base, token, args.rate, 2, products, warehouse)

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
                before = cpu()
                phases[name] = await post_at_rate(
                    base, token, args.rate, args.seconds, products, warehouse
                )
                if name == "with":  # the dispatcher's work for this phase ends with the drain
                    expected = len(phases[name].acked) * args.endpoints
                    deadline = time.monotonic() + DRAIN_TIMEOUT_S
                    while receiver.count() < expected and time.monotonic() < deadline:
                        await asyncio.sleep(0.1)
                after = cpu()
                phases[name].cpu = {k: after[k] - before[k] for k in after}
        arrivals, bodies, duplicates = receiver.dump()

    with_phase = phases["with"]
    # Seconds from each event's `occurred_at` (set in the transaction, so just before its
    # commit) to its delivery's arrival, per endpoint.
    delays: list[float] = []
    posting_ended = time.time() - (time.monotonic() - with_phase.ended)
    during = 0
    for (_path, event_id), arrived in arrivals.items():
        event = bodies.get(event_id, {})
        if movement_of(event) in with_phase.acked:
            delays.append(arrived - datetime.fromisoformat(event["occurred_at"]).timestamp())
            during += arrived <= posting_ended

    print(f"rate {args.rate:g}/s for {args.seconds:g} s per phase, {PRODUCTS} products, "
          f"{args.endpoints} endpoints on stock.* in phase 2")  # fmt: skip
    print(
        "configuration: dispatcher "
        + ("in a separate `stockroom relay` process (API: WEBHOOK_DISPATCHER_ENABLED=false)"
           if separate else "inside `stockroom serve`")
        + "; relay to the in-process event store "
        + ("on (mongomock in the API process)" if args.relay == "on" else
           "off (RELAY_ENABLED=false)")
        + "; receiver in its own process (uvloop); load generator: raw keep-alive connections"
        + f"; load average before {load_before}, after {os.getloadavg()[0]:.2f}"
    )  # fmt: skip
    print(f"{'phase':<22}{'accepted':>9}{'/s':>6}{'fail':>5}{'late':>6}{'POST p50':>10}"
          f"{'POST p99':>10}")  # fmt: skip
    for name, phase in phases.items():
        span = max(1e-9, phase.ended - phase.started)
        print(
            f"{name + ' subscriptions':<22}{len(phase.latencies):>9}"
            f"{len(phase.latencies) / span:>6.0f}{phase.failures:>5}{phase.late_starts:>6}"
            f"{percentile(phase.latencies, 0.5) * 1000:>8.1f}ms"
            f"{percentile(phase.latencies, 0.99) * 1000:>8.1f}ms"
        )
    print("CPU ms per accepted movement, by process (phase 2 includes the delivery drain):")
    print(f"{'phase':<22}" + "".join(f"{p:>15}" for p in PROCESSES) + f"{'total':>9}")
    for name, phase in phases.items():
        n = max(1, len(phase.latencies))
        row = [phase.cpu[p] / n * 1000 for p in PROCESSES]
        print(f"{name + ' subscriptions':<22}" + "".join(f"{v:>13.2f}ms" for v in row)
              + f"{sum(row):>7.2f}ms")  # fmt: skip
    without, with_ = phases["without"], phases["with"]

    def server_side(p: Phase) -> float:  # the write path: API + PostgreSQL + dispatcher
        return sum(p.cpu[k] for k in PROCESSES[:3]) / max(1, len(p.latencies))

    total_with = sum(with_.cpu.values()) / max(1, len(with_.latencies))
    print(
        f"write path with/without subscriptions: POST p50 x"
        f"{percentile(with_.latencies, 0.5) / percentile(without.latencies, 0.5):.2f}, "
        f"p99 x{percentile(with_.latencies, 0.99) / percentile(without.latencies, 0.99):.2f}, "
        f"CPU (API + PostgreSQL + dispatcher) per movement "
        f"{server_side(without) * 1000:.2f} -> {server_side(with_) * 1000:.2f} ms "
        f"(x{server_side(with_) / server_side(without):.2f}); all processes with "
        f"subscriptions {total_with * 1000:.2f} ms = at most {2 / total_with:.0f} movements/s "
        f"on {os.cpu_count()} cores"
    )
    deliveries = max(1, len(delays))
    print(
        f"dispatcher CPU per delivery: {with_.cpu['dispatcher'] / deliveries * 1000:.2f} ms"
        if separate
        else "dispatcher CPU per delivery: inside the API's (use --dispatcher separate)"
    )
    span = with_.ended - with_.started
    print(
        f"deliveries: {len(delays)}/{len(with_.acked) * args.endpoints} delivered, "
        f"{duplicates} duplicates; {during / span:.0f} deliveries/s while posting "
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
    port = receiver.port
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
            while receiver.count() < expected and time.monotonic() - started < DRAIN_TIMEOUT_S:
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(relay_pid) - cpu_before
            pg = meter.read()[1] - pg_before
    arrivals, _bodies, duplicates = receiver.dump()
    got = len(arrivals)
    print(f"backlog drain: {got}/{expected} deliveries ({args.backlog} movements x "
          f"{args.endpoints} endpoints) in {elapsed:.2f} s = {got / elapsed:.0f}/s, "
          f"{duplicates} duplicates; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
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
    import uvloop

    uvloop.run(drain(args) if args.backlog else run(args))


if __name__ == "__main__":
    main()
