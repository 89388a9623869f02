"""`stockroom relay` and the `stockroom events ...` group."""

from __future__ import annotations

import typer

# The `stockroom events` group; other domains add commands to it (activity: `events export`).
events_app = typer.Typer(help="Activity events: replay into the event store, export.")


def register(app: typer.Typer) -> None:
    """Add this domain's commands to the `stockroom` command."""
    app.add_typer(events_app, name="events")
