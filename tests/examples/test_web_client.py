"""examples/web-client against a real `stockroom serve`: types generated from the server's own
/openapi.json, compiled by `tsc --strict`, then run with node as a web app would use the API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, running_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "web-client"
ADMIN_EMAIL = f"web-admin-{uuid.uuid4().hex[:8]}@example.com"
ADMIN_PASSWORD = "web-admin-password-0123"


def _node() -> str:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are on the CI image; the web client test must run there")
        pytest.skip("node is not installed")
    return node


def _run(*command: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_typed_web_client_works_against_a_real_server(tmp_path: Path) -> None:
    node = _node()
    if not (EXAMPLE / "node_modules").is_dir():
        _run("npm", "ci", "--no-audit", "--no-fund", cwd=EXAMPLE)
    # A copy of the example, so the generated types and build stay out of the source tree.
    work = tmp_path / "web-client"
    shutil.copytree(EXAMPLE / "src", work / "src", ignore=shutil.ignore_patterns("schema.d.ts"))
    for name in ("package.json", "tsconfig.json"):
        shutil.copy(EXAMPLE / name, work / name)
    (work / "node_modules").symlink_to(EXAMPLE / "node_modules")
    bin_dir = EXAMPLE / "node_modules" / ".bin"

    with running_server(
        tmp_path / "data",
        free_port(),
        FIRST_ADMIN_EMAIL=ADMIN_EMAIL,
        FIRST_ADMIN_PASSWORD=ADMIN_PASSWORD,
        LOG_LEVEL="WARNING",
    ) as (_, base):
        _run(
            str(bin_dir / "openapi-typescript"),
            f"{base}/openapi.json",
            "--default-non-nullable=false",
            "--output",
            "src/schema.d.ts",
            cwd=work,
        )
        _run(str(bin_dir / "tsc"), "--strict", "-p", ".", cwd=work)
        env = {
            **os.environ,
            "STOCKROOM_URL": base,
            "STOCKROOM_EMAIL": ADMIN_EMAIL,
            "STOCKROOM_PASSWORD": ADMIN_PASSWORD,
        }
        report = json.loads(_run(node, "dist/main.js", cwd=work, env=env).strip().splitlines()[-1])

        assert report["refreshed"] is True
        assert report["duplicate_code"] == "duplicate_sku"
        assert report["replayed"] is True
        assert report["replayed_same_movement"] is True
        assert report["conflict_code"] == "insufficient_stock"
        assert report["sold"] == 10
        assert report["listed_total"] == 1
        assert report["sale_quantities"] == [10]

        # What the client did is what the server holds: one receipt (the retry was a replay),
        # one sale of what was on hand, nothing left.
        token = httpx.post(
            f"{base}/api/v1/auth/login-json",
            json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        product = httpx.get(f"{base}/api/v1/products/{report['product_id']}", headers=headers)
        assert product.json()["on_hand"] == 0
        movements = httpx.get(
            f"{base}/api/v1/stock-movements",
            params={"product_id": report["product_id"]},
            headers=headers,
        ).json()
        assert sorted((m["type"], m["quantity"]) for m in movements["items"]) == [
            ("receipt", 10),
            ("sale", 10),
        ]
