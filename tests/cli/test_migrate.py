from __future__ import annotations

import os
import subprocess
import sys


def test_migrate_sql_prints_the_schema_without_touching_a_database() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = "postgresql://nobody:nothing@127.0.0.1:9/none"
    result = subprocess.run(
        [sys.executable, "-m", "stockroom.cli", "migrate", "--sql"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE users" in result.stdout
    assert "CREATE TABLE products" in result.stdout
    assert "INSERT INTO roles" in result.stdout
