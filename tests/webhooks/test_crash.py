"""SIGKILL a real `stockroom serve` with deliveries done, in backoff and in flight; after the
restart every delivery completes, none that a receiver answered 2xx before the kill is sent
again, the one in flight is sent again with the same `webhook-id`, and no log line of either
process (at DEBUG) holds a secret."""

from __future__ import annotations

import collections
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.support.api import Api
from tests.support.servers import free_port, run_cli, running_server, wait_until
from tests.webhooks.conftest import Receiver, serving

# Two embedded-server starts: minutes on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ENV = {
    "FIRST_ADMIN_EMAIL": "hooks-admin@example.com",
    "FIRST_ADMIN_PASSWORD": "hooks-pass-0123",
    "SECRET_KEY": "webhook-crash-test-secret-key-0123456789abcdef",
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOK_TIMEOUT_S": "5",  # a lease of 15 s: the in-flight delivery is retried soon after
    "LOG_LEVEL": "DEBUG",  # the strictest check that no log line carries a secret
}
MOVEMENTS = 10


class ScriptedReceiver(Receiver):
    """`/ok` answers 200; `/backoff` answers 500 to the first two requests of each delivery (its
    third attempt is then 5 minutes away); `/hang` holds its first request unanswered (until
    the server is killed), then answers 200."""

    hang_seen: threading.Event
    secrets: dict[str, list[str]]  # path -> the secrets that must verify its deliveries
    verified: list[str]
    unverified: list[str]

    def respond(self, request: Any) -> int | None:
        super().respond(request)
        with self.lock:
            got = self.received[-1]
            same = [r for r in self.received if r.key == got.key]
            # Verified on arrival, as a receiver does (the timestamp must be recent).
            for secret in self.secrets.get(got.path, ["(no secret known)"]):
                try:
                    Webhook(secret).verify(got.body, got.headers)
                    self.verified.append(got.path)
                except Exception as exc:
                    self.unverified.append(f"{got.path}: {exc!r}")
        if got.path == "/backoff" and len(same) <= 2:
            return 500
        if got.path == "/hang" and len(same) == 1:
            self.hang_seen.set()
            return None
        return 200


@contextmanager
def drained(process: subprocess.Popen[str], lines: list[str]) -> Iterator[None]:
    """Read the server's output as it comes (a full pipe would block the server)."""
    assert process.stdout is not None
    stream = process.stdout
    thread = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=30)


def _deliveries(c: httpx.Client, endpoint: str, status: str | None = None) -> list[Any]:
    params = {"page_size": 100, **({"status": status} if status else {})}
    response = c.get(f"/webhooks/{endpoint}/deliveries", params=params)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


@pytest.fixture
def receiver() -> Iterator[ScriptedReceiver]:
    with serving(ScriptedReceiver) as instance:
        instance.hang_seen = threading.Event()
        instance.verified, instance.unverified, instance.secrets = [], [], {}
        instance.hang_s = 20.0
        yield instance


def test_sigkill_with_deliveries_pending_in_backoff_and_in_flight(
    tmp_path: Path, receiver: ScriptedReceiver
) -> None:
    base_url = receiver.url.removesuffix("/hook")
    data_dir = tmp_path / "data"
    output: list[str] = []
    secrets: dict[str, list[str]] = {}

    with running_server(data_dir, free_port(), **ENV) as (process, base), drained(process, output):
        api = Api.login(base, ENV["FIRST_ADMIN_EMAIL"], ENV["FIRST_ADMIN_PASSWORD"])
        warehouse = api.warehouse()
        product = api.product()
        endpoints: dict[str, str] = {}
        for name, types in (("ok", ["stock.*"]), ("backoff", ["stock.*"]),
                            ("hang", ["product.created"])):  # fmt: skip
            created = api.create("/webhooks", {"url": f"{base_url}/{name}", "event_types": types})
            endpoints[name] = created["id"]
            secrets[name] = [created["secret"]]
            receiver.secrets[f"/{name}"] = secrets[name]
        with api.client(timeout=30) as c:
            rotated = c.post(f"/webhooks/{endpoints['ok']}/rotate-secret")
            assert rotated.status_code == 200
            secrets["ok"].append(rotated.json()["secret"])  # both sign from now on
            for _ in range(MOVEMENTS):
                api.receive(product, warehouse, 1)

            def settled() -> bool:
                ok = _deliveries(c, endpoints["ok"], "succeeded")
                backoff = _deliveries(c, endpoints["backoff"], "pending")
                return (
                    len(ok) == MOVEMENTS
                    and len(backoff) == MOVEMENTS
                    and all(d["attempts"] == 2 for d in backoff)
                )

            wait_until(settled, timeout=60)  # two failures each: the next try is 5 min away
            api.product()  # product.created: the `/hang` endpoint's delivery goes in flight
            assert receiver.hang_seen.wait(timeout=30)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    # While the server was down the backoff ran out (the schedule is not the point here: 5 min
    # of waiting is); the in-flight delivery's lease is left as the kill left it.
    moved = run_cli(
        data_dir, "psql", "-c",
        "UPDATE webhook_deliveries SET next_attempt_at = now() "
        "WHERE status = 'pending' AND attempts = 2",
        **ENV,
    )  # fmt: skip
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert moved.stdout.strip().endswith(f"UPDATE {MOVEMENTS}")

    with running_server(data_dir, free_port(), **ENV) as (process, base), drained(process, output):
        api = Api.login(base, ENV["FIRST_ADMIN_EMAIL"], ENV["FIRST_ADMIN_PASSWORD"])
        with api.client(timeout=30) as c:

            def all_done() -> bool:
                return all(
                    all(d["status"] == "succeeded" for d in _deliveries(c, endpoint))
                    for endpoint in endpoints.values()
                )

            wait_until(all_done, timeout=90)
            time.sleep(1.0)  # room for a duplicate to show itself
            hang_deliveries = _deliveries(c, endpoints["hang"])
    assert len(hang_deliveries) == 1

    by_path = collections.defaultdict(list)
    for got in receiver.received:
        by_path[got.path].append(got)
    ok_ids = collections.Counter(r.headers["webhook-id"] for r in by_path["/ok"])
    assert len(ok_ids) == MOVEMENTS
    assert set(ok_ids.values()) == {1}  # answered 2xx before the kill: never sent again
    backoff_ids = collections.Counter(r.headers["webhook-id"] for r in by_path["/backoff"])
    assert len(backoff_ids) == MOVEMENTS
    assert set(backoff_ids.values()) == {3}  # 500, 500, then (after the restart) 200
    hang = by_path["/hang"]
    assert len(hang) == 2  # in flight at the kill: sent again (at least once)
    assert hang[0].headers["webhook-id"] == hang[1].headers["webhook-id"]
    assert hang[0].body == hang[1].body
    assert receiver.unverified == []
    assert len(receiver.verified) == sum(len(secrets[r.path[1:]]) for r in receiver.received)

    logs = "".join(output)
    assert "webhook dispatcher started" in logs  # both servers ran it
    for secret in (s for values in secrets.values() for s in values):
        assert secret not in logs
        assert secret.removeprefix("whsec_") not in logs
