"""Schemathesis against the app's own OpenAPI schema, on a real server, as admin and as staff.

Every check runs (`--checks all`; `positive_data_acceptance` through `contract_acceptance` in
`schemathesis_hooks.py`, which excuses only the refusals the contract defines), with the stateful
phase following the document's links from each create to the operations that take its id. The
server is seeded with a product in stock in one of two warehouses, handed to schemathesis as
dictionaries for `product_id` and the warehouse ids, so stateful chains post movements, start
transfers and record counts, then complete, cancel, approve, reject and reverse them.

Bounded for CI (`BUDGETS` below, fixed seed, no example database: the same cases every run);
`SCHEMATHESIS_MAX_EXAMPLES=50` makes a longer run. Every failure it reports is a bug to fix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, running_server

pytestmark = pytest.mark.slow

HOOKS = "tests.hardening.schemathesis_hooks"
ADMIN_EMAIL = f"fuzz-admin-{uuid.uuid4().hex[:8]}@example.com"
ADMIN_PASSWORD = "fuzz-admin-password-0123"
ROOT = Path(__file__).resolve().parents[2]
SECRET = "fuzzing-secret-key-0123456789abcdef0123456789abcdef"


def login(base: str, email: str, password: str) -> str:
    response = httpx.post(
        f"{base}/api/v1/auth/login-json", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    with running_server(
        data_dir,
        free_port(),
        SECRET_KEY=SECRET,
        FIRST_ADMIN_EMAIL=ADMIN_EMAIL,
        FIRST_ADMIN_PASSWORD=ADMIN_PASSWORD,
        LOG_LEVEL="WARNING",
    ) as (_, base):
        # The document is built on its first request (a second or more of CPU, far longer on a
        # busy machine): built here, schemathesis's 10 s schema-loading limit never trips.
        assert httpx.get(f"{base}/openapi.json", timeout=120).status_code == 200
        admin = login(base, ADMIN_EMAIL, ADMIN_PASSWORD)
        staff_email = f"fuzz-staff-{uuid.uuid4().hex[:8]}@example.com"
        created = httpx.post(
            f"{base}/api/v1/users",
            headers={"Authorization": f"Bearer {admin}"},
            json={
                "email": staff_email,
                "password": "fuzz-staff-password-0123",
                "full_name": "Fuzz Staff",
                "roles": ["staff"],
            },
        )
        assert created.status_code == 201, created.text
        staff = login(base, staff_email, "fuzz-staff-password-0123")
        yield {"base": base, "admin": admin, "staff": staff, **seed_stock(base, admin)}


def seed_stock(base: str, token: str) -> dict[str, str]:
    """Two warehouses and a product with stock in the first: ids schemathesis cannot invent."""
    headers = {"Authorization": f"Bearer {token}"}
    tag = uuid.uuid4().hex[:6]

    def post(path: str, body: dict[str, object]) -> str:
        response = httpx.post(f"{base}/api/v1{path}", headers=headers, json=body)
        assert response.status_code == 201, response.text
        created: str = response.json()["id"]
        return created

    source = post("/warehouses", {"code": f"FZ-A-{tag}", "name": "Fuzz source"})
    destination = post("/warehouses", {"code": f"FZ-B-{tag}", "name": "Fuzz destination"})
    product = post("/products", {"sku": f"FZ-{tag}", "name": "Fuzz widget", "sale_price": "9.99"})
    post(
        "/stock-movements",
        {"product_id": product, "warehouse_id": source, "type": "receipt", "quantity": 1_000_000},
    )
    return {"product": product, "source": source, "destination": destination}


# Cases per operation in the fuzzing phase and scenarios in the stateful phase, by role: what
# keeps the whole test within a few minutes on CI's two cores (the examples and coverage phases
# are deterministic and complete). `SCHEMATHESIS_MAX_EXAMPLES` replaces both, for longer runs.
BUDGETS = {"admin": (2, 30), "staff": (1, 10)}


def fuzz_config(target: dict[str, str], path: Path, role: str) -> Path:
    """The repository's `schemathesis.toml`, plus the seeded ids as dictionaries and the role's
    budget."""
    fuzzing, stateful = BUDGETS[role]
    budget = (
        ""
        if os.environ.get("SCHEMATHESIS_MAX_EXAMPLES")
        else f"""
[phases.fuzzing.generation]
max-examples = {fuzzing}

[phases.stateful.generation]
max-examples = {stateful}
"""
    )
    bindings = {
        "product_id": ("products", 0.7),
        "warehouse_id": ("warehouses", 0.7),
        "from_warehouse_id": ("sources", 0.7),
        "to_warehouse_id": ("destinations", 0.7),
    }
    extra = f"""
[dictionaries.products]
values = ["{target["product"]}"]

[dictionaries.warehouses]
values = ["{target["source"]}", "{target["destination"]}"]

[dictionaries.sources]
values = ["{target["source"]}"]

[dictionaries.destinations]
values = ["{target["destination"]}"]

[parameters]
""" + "".join(
        f'"body.{field}" = {{ dictionary = "{name}", probability = {p} }}\n'
        for field, (name, p) in bindings.items()
    )
    path.write_text((ROOT / "schemathesis.toml").read_text() + budget + extra)
    return path


# The admin reaches every operation's validation and logic, so it gets every phase, including
# the deterministic boundary and negative cases of `coverage` (3,300 requests, most of the run).
# Staff mostly meets 403s: random and stateful cases are enough to check that every denial is a
# clean, documented answer and that no operation ignores its permission.
PHASES = {"admin": "examples,coverage,fuzzing,stateful", "staff": "examples,fuzzing,stateful"}


def run_schemathesis(
    base: str, token: str, phases: str, config: Path, report: Path
) -> subprocess.CompletedProcess[str]:
    max_examples = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES")
    longer = ["--max-examples", max_examples] if max_examples else []
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            f"{base}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--phases",
            phases,
            "--header",
            f"Authorization: Bearer {token}",
            *longer,
            "--seed",
            os.environ.get("SCHEMATHESIS_SEED", "20261122"),
            # One worker: concurrent AST parsing inside schemathesis can trip a CPython 3.11 bug
            # ("AST constructor recursion depth mismatch"), a tool error, not an API failure.
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "20",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=ROOT,  # so that the hooks module imports
        env={**os.environ, "SCHEMATHESIS_HOOKS": HOOKS},
    )


# Far above the few minutes it takes, below CI's limit: the default 300 s would cut the admin run.
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("role", ["admin", "staff"])
def test_every_operation_survives_fuzzing(
    fuzz_target: dict[str, str], role: str, tmp_path: Path
) -> None:
    config = fuzz_config(fuzz_target, tmp_path / "schemathesis.toml", role)
    result = run_schemathesis(
        fuzz_target["base"], fuzz_target[role], PHASES[role], config, tmp_path / "junit.xml"
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
