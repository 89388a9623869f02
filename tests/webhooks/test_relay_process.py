"""`stockroom relay` as a real process on the test database: with MONGODB_URL unset it runs the
webhook dispatcher alone, and a delivery committed by another process reaches a receiver on
127.0.0.1 signed as the contract says; SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from stockroom.db.engine import create_engine, create_sessionmaker
from tests.webhooks.conftest import Receiver, deliveries, make_endpoint, record_events

pytestmark = pytest.mark.timeout(180)


async def test_stockroom_relay_process_delivers_to_a_local_receiver(
    fresh_database: str, receiver: Receiver, tmp_path: Path
) -> None:
    engine = create_engine(fresh_database, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URL"}
    env.update(
        DATABASE_URL=fresh_database,
        STOCKROOM_DATA_DIR=str(tmp_path / "data"),
        ENVIRONMENT="local",
        SECRET_KEY="relay-process-test-secret-key-0123456789abcdef",
        WEBHOOK_DISPATCHER_ENABLED="true",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",  # the receiver is on 127.0.0.1
        WEBHOOK_POLL_INTERVAL_S="0.1",
        LOG_FORMAT="json",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "stockroom.cli", "relay"],
        env=env,
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        endpoint = await make_endpoint(sessionmaker, receiver.url, ["product.*"])
        # Committed here, in the test process: the relay process learns of it only from
        # PostgreSQL (no in-process wake-up reaches it).
        [event_id] = await record_events(sessionmaker, "product.created")
        deadline = time.monotonic() + 120
        while not receiver.received and time.monotonic() < deadline:
            assert process.poll() is None, "stockroom relay exited"
            await asyncio.sleep(0.1)
        assert len(receiver.received) == 1, "no delivery arrived"
        got = receiver.received[0]
        assert got.headers["webhook-id"] == str(event_id)
        Webhook(endpoint.secret).verify(got.body, got.headers)  # raises if not signed right
        assert got.event["type"] == "product.created"
        while time.monotonic() < deadline:  # the outcome is recorded by the relay process
            [delivery] = await deliveries(sessionmaker, endpoint.id)
            if delivery.status != "pending":
                break
            await asyncio.sleep(0.1)
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "succeeded",
            1,
            200,
        )
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output
        assert "running the webhook dispatcher only" in output
        assert endpoint.secret not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        await engine.dispose()
