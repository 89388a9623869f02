"""Two `stockroom serve` processes, each with its own relay, on one PostgreSQL: no oversell, no
double transition, lockout counted across both, every event delivered by exactly one relay."""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.api import Api
from tests.support.servers import free_port, psql_scalar_rows, running_server, wait_until

pytestmark = pytest.mark.slow

ENV = {
    "FIRST_ADMIN_EMAIL": "scale-admin@example.com",
    "FIRST_ADMIN_PASSWORD": "scale-pass-0123",
    "SECRET_KEY": "scale-out-secret-key-0123456789abcdef0123456",
}


def test_two_replicas_share_one_database_safely(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with (
        running_server(data_dir, free_port(), **ENV) as (_, first),
        running_server(data_dir, free_port(), **ENV) as (_, second),
    ):
        apis = [
            Api.login(base, ENV["FIRST_ADMIN_EMAIL"], ENV["FIRST_ADMIN_PASSWORD"])
            for base in (first, second)
        ]
        source, destination = apis[0].warehouse(), apis[0].warehouse()
        product = apis[0].product()
        apis[0].receive(product, source, 50)
        baseline = set(psql_scalar_rows(data_dir, "SELECT id FROM outbox_events"))

        def sell(i: int) -> int:
            api = apis[i % 2]
            return httpx.post(
                f"{api.base}/api/v1/stock-movements",
                headers=api.headers,
                json={"product_id": product, "warehouse_id": source, "type": "sale",
                      "quantity": 1},
                timeout=60,
            ).status_code  # fmt: skip

        with ThreadPoolExecutor(32) as pool:
            sales = Counter(pool.map(sell, range(200)))
        assert sales == {201: 50, 409: 150}
        levels = httpx.get(
            f"{first}/api/v1/stock", params={"product_id": product}, headers=apis[0].headers
        ).json()["items"]
        assert {level["warehouse_id"]: level["on_hand"] for level in levels}[source] == 0

        apis[1].receive(product, source, 5)
        transfer = apis[1].create(
            "/stock-transfers",
            {"product_id": product, "from_warehouse_id": source,
             "to_warehouse_id": destination, "quantity": 5},
        )["id"]  # fmt: skip

        def transition(i: int) -> int:
            api = apis[i % 2]
            action = "complete" if i % 4 < 2 else "cancel"
            return httpx.post(
                f"{api.base}/api/v1/stock-transfers/{transfer}/{action}",
                headers=api.headers,
                timeout=60,
            ).status_code

        with ThreadPoolExecutor(20) as pool:
            transitions = Counter(pool.map(transition, range(20)))
        assert transitions == {200: 1, 409: 19}

        # Lockout is counted in PostgreSQL, so failures on both replicas add up.
        email = f"victim-{uuid.uuid4().hex[:6]}@example.com"
        apis[0].create(
            "/users",
            {"email": email, "password": "right-password-1", "full_name": "V", "roles": []},
        )
        for i in range(5):
            failed = httpx.post(
                f"{(first, second)[i % 2]}/api/v1/auth/login-json",
                json={"email": email, "password": "wrong-password"},
            )
            assert failed.status_code == 401
        locked = httpx.post(
            f"{first}/api/v1/auth/login-json",
            json={"email": email, "password": "right-password-1"},
        )
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0

        def drained() -> bool:
            return all(
                httpx.get(f"{base}/api/v1/health/ready", timeout=5).json()["outbox_backlog"] == 0
                for base in (first, second)
            )

        wait_until(drained, timeout=60)
        outbox = set(psql_scalar_rows(data_dir, "SELECT id FROM outbox_events")) - baseline
        in_first = set(apis[0].all_activity_ids()) - baseline
        in_second = set(apis[1].all_activity_ids()) - baseline
        assert in_first | in_second == outbox, "an event was not delivered"
        assert not in_first & in_second, "an event was delivered by both relays"
