"""`stockroom events export` (added to the events group)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this domain's commands to the `stockroom` command."""
