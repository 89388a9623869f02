"""The auth domain's command: `stockroom create-admin`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from stockroom import commands
from stockroom.settings import Settings

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128


def _valid_email(value: str) -> str:
    value = value.strip().lower()
    local, at, domain = value.partition("@")
    if not at or not local or not domain or any(c.isspace() for c in value) or len(value) > 320:
        raise typer.BadParameter("not an email address")
    return value


async def _create_admin(
    settings: Settings, email: str, password: str, full_name: str, reset: bool
) -> bool:
    from stockroom.auth import service
    from stockroom.context import Context

    async with commands.command_database(settings) as sessionmaker, sessionmaker() as session:
        result = await service.ensure_admin(
            session,
            email=email,
            password=password,
            full_name=full_name,
            reset_existing=reset,
            ctx=Context.system(),
        )
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
    settings = commands.load_settings()
    created = asyncio.run(_create_admin(settings, email, password, full_name.strip(), reset))
    if created:
        typer.echo(f"administrator {email} created")
    elif reset:
        typer.echo(f"{email}: admin role granted, reactivated, password set, sessions revoked")
    else:
        typer.echo(
            f"stockroom: a user {email} already exists (use --reset to restore it)", err=True
        )
        raise typer.Exit(1)
