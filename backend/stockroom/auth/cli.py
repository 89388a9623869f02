"""`stockroom` subcommands of the auth domain: `create-admin`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128


def _valid_email(value: str) -> str:
    value = value.strip().lower()
    local, at, domain = value.partition("@")
    if not at or not local or not domain or any(c.isspace() for c in value) or len(value) > 320:
        raise typer.BadParameter("not an email address")
    return value


async def _create_admin(url: str, email: str, password: str, full_name: str, reset: bool) -> bool:
    from stockroom.auth import service
    from stockroom.context import Context
    from stockroom.db.engine import create_engine, create_sessionmaker

    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with create_sessionmaker(engine)() as session:
            result = await service.ensure_admin(
                session,
                email=email,
                password=password,
                full_name=full_name,
                reset_existing=reset,
                ctx=Context.system(),
            )
    finally:
        await engine.dispose()
    return result.created


def create_admin(
    email: Annotated[
        str, typer.Option(prompt=True, callback=_valid_email, help="the administrator's email")
    ],
    password: Annotated[
        str | None,
        typer.Option(help="the password (prompted for, hidden and confirmed, when omitted)"),
    ] = None,
    full_name: Annotated[str, typer.Option(help="display name")] = "Administrator",
    reset: Annotated[
        bool,
        typer.Option(
            help="if the email exists: grant it admin, reactivate it and set this password"
        ),
    ] = False,
) -> None:
    """Create an administrator (or, with --reset, restore admin access to an existing user)."""
    from stockroom.cli import load_settings
    from stockroom.db import migrate as migrations
    from stockroom.db.embedded import EmbeddedPostgresError
    from stockroom.db.runtime import resolve_database

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    assert password is not None
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        typer.echo(
            f"stockroom: the password must have {MIN_PASSWORD_LENGTH} to "
            f"{MAX_PASSWORD_LENGTH} characters",
            err=True,
        )
        raise typer.Exit(2)
    settings = load_settings()
    try:
        target = resolve_database(settings)
    except EmbeddedPostgresError as exc:
        typer.echo(f"stockroom: {exc}", err=True)
        raise typer.Exit(1) from None
    if target.is_embedded:
        migrations.upgrade(target.url)
    elif not migrations.schema_is_current(target.url):
        typer.echo(
            "stockroom: the database schema is out of date; run `stockroom migrate`", err=True
        )
        raise typer.Exit(1)
    created = asyncio.run(_create_admin(target.url, email, password, full_name.strip(), reset))
    if created:
        typer.echo(f"administrator {email} created")
    elif reset:
        typer.echo(f"{email}: admin role granted, reactivated, password set, sessions revoked")
    else:
        typer.echo(
            f"stockroom: a user {email} already exists (use --reset to restore it)", err=True
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this domain's commands to the `stockroom` command."""
    app.command("create-admin")(create_admin)
