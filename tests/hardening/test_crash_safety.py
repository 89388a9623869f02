"""SIGKILL the API in the middle of concurrent writes: nothing acknowledged is lost, no level
drifts from the ledger, no transfer is half done, and every event reaches the event store."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.api import Api
from tests.support.servers import (
    free_port,
    psql_scalar_rows,
    run_cli,
    running_server,
    wait_until,
)

pytestmark = pytest.mark.slow

ADMIN = {"FIRST_ADMIN_EMAIL": "crash-admin@example.com", "FIRST_ADMIN_PASSWORD": "crash-pass-0123"}
SECRET = {"SECRET_KEY": "crash-test-secret-key-0123456789abcdef012345"}
WRITERS = 8


class Workload:
    """Writers posting sales, receipts and transfers until told to stop or the server dies."""

    def __init__(self, api: Api, product: str, source: str, destination: str) -> None:
        self.api = api
        self.product = product
        self.source = source
        self.destination = destination
        self.stop = threading.Event()
        self.acknowledged_movements: list[str] = []
        self.acknowledged_transfers: dict[str, str] = {}  # id -> status the client was told
        self.lock = threading.Lock()

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        with self.api.client(timeout=10) as c:
            while not self.stop.is_set():
                try:
                    self.step(c, rng)
                except httpx.TransportError:
                    return  # the server is gone

    def step(self, c: httpx.Client, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.6:
            kind = "sale" if roll < 0.35 else "receipt"
            response = c.post(
                "/stock-movements",
                json={"product_id": self.product, "warehouse_id": self.source, "type": kind,
                      "quantity": rng.randint(1, 3)},
            )  # fmt: skip
            if response.status_code == 201:
                with self.lock:
                    self.acknowledged_movements.append(response.json()["id"])
            return
        response = c.post(
            "/stock-transfers",
            json={"product_id": self.product, "from_warehouse_id": self.source,
                  "to_warehouse_id": self.destination, "quantity": 1},
        )  # fmt: skip
        if response.status_code != 201:
            return
        transfer = response.json()["id"]
        with self.lock:
            self.acknowledged_transfers[transfer] = "in_transit"
        action = rng.choice(["complete", "cancel", None])
        if action:
            done = c.post(f"/stock-transfers/{transfer}/{action}")
            if done.status_code == 200:
                with self.lock:
                    self.acknowledged_transfers[transfer] = done.json()["status"]


def test_sigkill_during_concurrent_writes_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**ADMIN, **SECRET}
    with running_server(data_dir, free_port(), **env) as (process, base):
        api = Api.login(base, ADMIN["FIRST_ADMIN_EMAIL"], ADMIN["FIRST_ADMIN_PASSWORD"])
        source, destination = api.warehouse(), api.warehouse()
        product = api.product()
        api.receive(product, source, 5_000)
        workload = Workload(api, product, source, destination)
        threads = [threading.Thread(target=workload.run, args=(seed,)) for seed in range(WRITERS)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        workload.stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert workload.acknowledged_movements, "the workload wrote nothing before the kill"

    with running_server(data_dir, free_port(), **env) as (_, base):
        api = Api.login(base, ADMIN["FIRST_ADMIN_EMAIL"], ADMIN["FIRST_ADMIN_PASSWORD"])
        with api.client(timeout=30) as c:
            for movement in workload.acknowledged_movements:
                assert c.get(f"/stock-movements/{movement}").status_code == 200, movement
            for transfer, told in workload.acknowledged_transfers.items():
                stored = c.get(f"/stock-transfers/{transfer}")
                assert stored.status_code == 200, transfer
                if told != "in_transit":
                    assert stored.json()["status"] == told, transfer

        check = run_cli(data_dir, "stock", "check", **env)
        assert check.returncode == 0, check.stdout + check.stderr

        def outbox_drained() -> bool:
            ready = httpx.get(f"{base}/api/v1/health/ready", timeout=5).json()
            return bool(ready["outbox_backlog"] == 0)

        wait_until(outbox_drained, timeout=60)
        outbox = set(psql_scalar_rows(data_dir, "SELECT id FROM outbox_events"))
        stored_events = api.all_activity_ids()
        assert len(stored_events) == len(set(stored_events)), "an event was stored twice"
        assert set(stored_events) == outbox
