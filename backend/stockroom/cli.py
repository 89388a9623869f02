"""The `stockroom` command, assembled here from the commands the domains export."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from stockroom import commands
from stockroom.activity.cli import export_command
from stockroom.auth.cli import create_admin
from stockroom.catalog.cli import export_app, import_app
from stockroom.demo import seed
from stockroom.events.cli import rebuild_rollups_command, replay_command, run_relay
from stockroom.stock.cli import stock_app

app = typer.Typer(
    name="stockroom",
    help="Stockroom inventory API: serve it, migrate it, run its relay, manage its data.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    reload: Annotated[bool, typer.Option(help="reload on code changes (development)")] = False,
    migrate: Annotated[
        bool, typer.Option(help="upgrade an external database's schema before serving")
    ] = False,
) -> None:
    """Serve the API (embedded PostgreSQL and in-process event store unless configured)."""
    from stockroom.db.engine import describe_url
    from stockroom.logs import configure_logging

    settings = commands.load_settings()
    configure_logging(settings)
    target = commands.database_target(
        settings,
        upgrade=migrate,
        hint="run `stockroom migrate` or start with `stockroom serve --migrate`",
    )
    database = (
        f"embedded PostgreSQL in {settings.stockroom_data_dir.resolve() / 'postgres'}"
        if target.is_embedded
        else describe_url(target.url)
    )
    event_store = (
        "in-process (mongomock-motor; events are rebuilt from the outbox at start)"
        if settings.uses_in_process_event_store
        else describe_url(settings.mongodb_url or "")
    )
    if workers > 1 and settings.uses_in_process_event_store:
        typer.echo(
            "warning: each worker has its own in-process event store and sees only the events "
            "its own relay delivered; set MONGODB_URL to share one across workers",
            err=True,
        )
    shown_host = f"[{host}]" if ":" in host else host
    typer.echo(f"Stockroom API:  http://{shown_host}:{port}/api/v1")
    typer.echo(f"API docs:       http://{shown_host}:{port}/docs")
    typer.echo(f"Database:       {database}")
    typer.echo(f"Event store:    {event_store}")
    sys.stdout.flush()
    # Uvicorn re-raises the stop signal once it has shut down. Turning SIGTERM into a normal exit
    # lets the exit handlers run, which stop the embedded PostgreSQL cleanly.
    signal.signal(signal.SIGTERM, _exit_normally)
    try:
        _run_uvicorn(host, port, workers, reload)
    except KeyboardInterrupt:
        pass


def _exit_normally(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _run_uvicorn(host: str, port: int, workers: int, reload: bool) -> None:
    import uvicorn

    uvicorn.run(
        "stockroom.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers if not reload else None,
        reload=reload,
        loop="uvloop",
        http="httptools",
        server_header=False,
        access_log=False,
        log_config=None,
        # X-Forwarded-* are honoured by the app itself, from FORWARDED_ALLOW_IPS only.
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )


def relay() -> None:
    """Run the outbox relay in this process (for deployments that run it apart from the API),
    with the webhook dispatcher unless WEBHOOK_DISPATCHER_ENABLED=false. Without MONGODB_URL
    (events relayed inside `serve`), the webhook dispatcher alone."""
    from stockroom.webhooks.lifespan import running_dispatcher

    # webhooks: same process, own task
    run_relay(running_dispatcher, companion_enabled=lambda s: s.webhook_dispatcher_enabled)


@app.command("migrate")
def migrate_command(
    sql: Annotated[bool, typer.Option("--sql", help="print the SQL instead of running it")] = False,
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Upgrade the database schema to the latest revision."""
    from stockroom.db import migrate as migrations
    from stockroom.db.runtime import resolve_database

    settings = commands.load_settings()
    if sql:
        url = settings.database_url or "postgresql+asyncpg://localhost/stockroom"
        migrations.upgrade(url, revision, sql=True)
        return
    target = resolve_database(settings)
    migrations.upgrade(target.url, revision)
    typer.echo(f"database at revision {migrations.head_revision()}")


@app.command()
def psql(
    command: Annotated[
        str | None, typer.Option("-c", "--command", help="run one SQL command and exit")
    ] = None,
) -> None:
    """Open the bundled psql on the embedded database (or print how to reach an external one)."""
    import subprocess

    from stockroom.db.embedded import psql_command
    from stockroom.db.engine import describe_url
    from stockroom.db.runtime import resolve_database

    settings = commands.load_settings()
    if settings.database_url:
        typer.echo(f"external database: {describe_url(settings.database_url)}; use your own psql")
        raise typer.Exit(1)
    target = resolve_database(settings)
    argv = psql_command(target.embedded_server)
    if command is not None:
        argv += ["-At", "-c", command]
    # A child process, not exec: this process must live on to release its handle on the
    # embedded server, which stops it when nobody else uses it.
    raise typer.Exit(subprocess.run(argv, check=False).returncode)


app.command("create-admin")(create_admin)
app.command("seed")(seed)
app.command("relay")(relay)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")

events_app = typer.Typer(
    help="Activity events: replay into the event store, rebuild the dashboard rollups, export."
)
events_app.command("replay")(replay_command)
events_app.command("rebuild-rollups")(rebuild_rollups_command)
events_app.command("export")(export_command)
app.add_typer(events_app, name="events")

app.add_typer(stock_app, name="stock")

if __name__ == "__main__":
    app()
