"""A longer Schemathesis run than CI's, against a real server, as admin and as staff.

uv run python bench/fuzz.py [--max-examples 50] [--seed N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import uuid

import httpx

from _harness import ROOT, login, serve

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,negative_data_rejection,ignored_auth,use_after_free"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", default="50")
    parser.add_argument("--seed", default=None)
    args = parser.parse_args()
    failures = 0
    with serve() as (base, _):
        admin = login(base)
        staff_email = f"fuzz-staff-{uuid.uuid4().hex[:6]}@example.com"
        httpx.post(
            f"{base}/api/v1/users",
            headers={"Authorization": f"Bearer {admin}"},
            json={"email": staff_email, "password": "fuzz-staff-pass-0123",
                  "full_name": "Fuzz Staff", "roles": ["staff"]},
        ).raise_for_status()  # fmt: skip
        staff = login(base, staff_email, "fuzz-staff-pass-0123")
        for role, token in (("admin", admin), ("staff", staff)):
            command = [
                sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json",
                "--checks", CHECKS, "--header", f"Authorization: Bearer {token}",
                "--max-examples", args.max_examples, "--workers", "2",
            ]  # fmt: skip
            if args.seed:
                command += ["--seed", args.seed]
            print(f"== schemathesis as {role}", flush=True)
            failures += subprocess.run(command, cwd=ROOT, check=False).returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
