"""Auth work at application start: permission-denied auditing and the first administrator."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.auth import service
from stockroom.auth.deps import request_context
from stockroom.context import Context, Principal
from stockroom.settings import Settings

logger = structlog.get_logger("stockroom.auth")

EMBEDDED_ADMIN_EMAIL = "admin@stockroom.local"
ADMIN_FULL_NAME = "Administrator"


async def _record_permission_denied(
    request: Request, principal: Principal, permission: str
) -> None:
    """`require()` calls this before answering 403: one `auth.permission_denied` event, committed
    in its own short transaction because the request itself is about to fail."""
    try:
        await service.record_permission_denied(
            request.app.state.sessionmaker, request_context(request, principal), permission
        )
    except Exception:  # auditing must never turn a 403 into a 500
        logger.exception("could not record a permission_denied event")


def _announce_generated_password(email: str, password: str) -> None:
    # Deliberately stdout and not the log: the password is shown once to whoever started the
    # server and never enters a log pipeline or the database in clear text.
    sys.stdout.write(
        "\n"
        "  First administrator created. This password is shown once and stored nowhere:\n"
        f"    email:    {email}\n"
        f"    password: {password}\n"
        "  Change it after logging in (POST /api/v1/users/me/password).\n\n"
    )
    sys.stdout.flush()


async def ensure_first_admin(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """`FIRST_ADMIN_EMAIL`/`FIRST_ADMIN_PASSWORD` create that admin if the email is unknown; in
    the embedded default with no active admin and nothing configured, one is generated."""
    ctx = Context.system()
    if settings.first_admin_email:
        generated = not settings.first_admin_password
        password = settings.first_admin_password or service.generate_password()
        async with sessionmaker() as session:
            result = await service.ensure_admin(
                session,
                email=settings.first_admin_email,
                password=password,
                full_name=ADMIN_FULL_NAME,
                reset_existing=False,
                ctx=ctx,
            )
        if result.created:
            logger.info("first administrator created", email=result.email)
            if generated:
                _announce_generated_password(result.email, password)
        return
    if not settings.uses_embedded_postgres:
        return
    async with sessionmaker() as session:
        if await service.has_active_admin(session):
            return
    password = service.generate_password()
    async with sessionmaker() as session:
        result = await service.ensure_admin(
            session,
            email=EMBEDDED_ADMIN_EMAIL,
            password=password,
            full_name=ADMIN_FULL_NAME,
            reset_existing=False,
            ctx=ctx,
        )
    if result.created:
        _announce_generated_password(result.email, password)
    else:
        logger.warning(
            "no active administrator; create one with `stockroom create-admin`",
            email=result.email,
        )


@asynccontextmanager
async def auth_startup(app: FastAPI) -> AsyncIterator[None]:
    app.state.on_permission_denied = _record_permission_denied
    settings: Settings = app.state.settings
    # Tests build apps on a shared transaction and set no admin: nothing to bootstrap there.
    if hasattr(app.state, "database") or settings.first_admin_email is not None:
        await ensure_first_admin(app.state.sessionmaker, settings)
    await service.warm_up()
    yield
