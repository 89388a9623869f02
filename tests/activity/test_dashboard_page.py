"""The `/dashboard` page in a real headless Chromium: sign in, charts drawn, forbidden message.

Skips only when Chromium is missing and `STOCKROOM_REQUIRE_BROWSER` is unset; CI sets it (and
installs Chromium), so there a missing browser fails instead of skipping.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy.ext.asyncio import async_sessionmaker

from stockroom.db.engine import create_engine
from stockroom.events import rollups
from stockroom.main import create_app
from tests.activity.browser import Browser, browser_required, chromium_path
from tests.activity.conftest import event, movement
from tests.conftest import http_client, make_settings
from tests.factories.auth import DEFAULT_PASSWORD, make_user

# Screenshots are kept for a human to look at (CI uploads this folder on failure).
SCREENSHOTS = Path(tempfile.gettempdir()) / "stockroom-screenshots"

pytestmark = pytest.mark.skipif(
    chromium_path() is None and not browser_required(),
    reason="chromium is not installed (set STOCKROOM_REQUIRE_BROWSER=1 to fail instead)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerThread:
    """uvicorn serving the app on 127.0.0.1 in a thread of its own (its own event loop)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = _free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ServerThread:
        self.thread.start()
        for _ in range(600):
            if self.server.started:
                return self
            await asyncio.sleep(0.05)
        raise RuntimeError("uvicorn did not start")

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await asyncio.to_thread(self.thread.join, 20)


@pytest.fixture
async def site(fresh_database: str) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A served app on a database of its own, with an analyst, a clerk and a day of events."""
    engine = create_engine(fresh_database)
    emails = {
        "analyst": f"analyst-{uuid.uuid4().hex[:6]}@example.com",
        "staff": f"clerk-{uuid.uuid4().hex[:6]}@example.com",
    }
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        async with session.begin():
            analyst = await make_user(session, roles=["analyst"], email=emails["analyst"])
            await make_user(session, roles=["staff"], email=emails["staff"])
    await engine.dispose()

    app = create_app(make_settings(fresh_database))
    async with ServerThread(app) as server:
        now = datetime.now(UTC)
        warehouses = [uuid.uuid4(), uuid.uuid4()]
        docs = []
        for i in range(120):
            when = now - timedelta(minutes=11 * i + 1)
            docs.append(
                event(
                    ["product.updated", "auth.login_succeeded", "product.created"][i % 3],
                    when,
                    actor=(analyst.id, emails["analyst"])
                    if i % 2
                    else (uuid.UUID(int=i % 7), f"clerk{i % 7}@example.com"),
                    entity=("product", uuid.uuid4()),
                )
            )
            docs.append(movement(when, warehouses[i % 2], (i % 9) - 3 or 5))
            docs[-1]["data"]["warehouse_code"] = ["WH-NORTH", "WH-SOUTH"][i % 2]
        collection = app.state.event_store.collection
        await collection.insert_many(docs)
        # Written behind the relay's back: bring the dashboards' rollups up to date, as the
        # relay does for what it delivers.
        # The app's own engine belongs to the server thread's event loop: use one of this loop.
        rebuild_engine = create_engine(fresh_database)
        try:
            await rollups.rebuild(
                async_sessionmaker(rebuild_engine, expire_on_commit=False), collection, now
            )
        finally:
            await rebuild_engine.dispose()
        yield server.base, emails


async def test_dashboard_signs_in_and_draws_every_chart(site: tuple[str, dict[str, str]]) -> None:
    base, emails = site
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with Browser() as page:
        await page.goto(f"{base}/dashboard")
        assert await page.wait_for("document.body.dataset.state === 'login'")
        await page.eval(
            f"""(() => {{
                const form = document.getElementById('login-form');
                form.email.value = {emails["analyst"]!r};
                form.password.value = {DEFAULT_PASSWORD!r};
                form.requestSubmit();
            }})()"""
        )
        await page.wait_for("document.body.dataset.state === 'ready'", timeout=60)

        assert await page.eval("document.body.dataset.chartsRendered") == "3"
        assert (
            int(await page.eval("document.querySelector('[data-field=events_today]').textContent"))
            >= 0
        )
        rows = await page.eval("document.querySelectorAll('#events tbody tr').length")
        assert rows == 50
        # Every chart canvas has real pixels drawn on it, not a blank box.
        painted = await page.eval(
            """[...document.querySelectorAll('canvas')].map((c) => {
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
                return n;
            })"""
        )
        assert len(painted) == 3
        assert all(n > 2000 for n in painted), painted
        # Stock-flow bars are labelled by warehouse code, not by a prefix of the id.
        labels = await page.eval(
            "Chart.getChart(document.getElementById('flow-chart')).data.labels"
        )
        assert sorted(labels) == ["WH-NORTH", "WH-SOUTH"]
        assert await page.eval("sessionStorage.getItem('stockroom.access_token') !== null")
        png = await page.screenshot(SCREENSHOTS / "dashboard.png")
        assert png.startswith(b"\x89PNG")
        assert len(png) > 20_000

        # Filters narrow the latest-events table; a bad filter shows the API's message.
        await page.eval(
            """(() => { const f = document.getElementById('filters');
                f.type.value = 'stock.*'; f.requestSubmit(); })()"""
        )
        await page.wait_for(
            "[...document.querySelectorAll('#events tbody tr td:nth-child(2)')]"
            ".every((td) => td.textContent === 'stock.movement_posted')"
        )
        await page.eval(
            """(() => { const f = document.getElementById('filters');
                f.type.value = 'bad type'; f.requestSubmit(); })()"""
        )
        assert await page.wait_for("document.getElementById('filter-error').textContent")


async def test_a_user_without_audit_read_sees_a_clear_message(
    site: tuple[str, dict[str, str]],
) -> None:
    base, emails = site
    async with Browser() as page:
        await page.goto(f"{base}/dashboard")
        await page.wait_for("document.body.dataset.state === 'login'")
        await page.eval(
            f"""(() => {{
                const form = document.getElementById('login-form');
                form.email.value = {emails["staff"]!r};
                form.password.value = {DEFAULT_PASSWORD!r};
                form.requestSubmit();
            }})()"""
        )
        await page.wait_for("document.body.dataset.state === 'forbidden'", timeout=60)
        message = await page.eval("document.getElementById('forbidden').innerText")
        assert "audit:read" in message
        assert await page.eval("document.getElementById('dashboard').hidden")
        await page.screenshot(SCREENSHOTS / "dashboard-forbidden.png")


async def test_the_page_and_its_assets_are_served_locally(app: Any) -> None:
    async with http_client(app) as c:
        page = await c.get("/dashboard")
        chart = await c.get("/dashboard/static/chart.umd.min.js")
        missing = await c.get("/dashboard/static/..%2Fpages.py")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "cdn" not in page.text.lower()
    assert chart.status_code == 200
    assert chart.headers["content-type"].startswith("text/javascript")
    assert b"Chart.js v4" in chart.content[:400]
    assert missing.status_code == 404
