"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from stockroom.events.relay import outbox_status
from stockroom.http.errors import problem_responses
from stockroom.webhooks.dispatcher import refresh_gauges as webhook_status

router = APIRouter(prefix="/health", tags=["health"])


class Live(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    postgres: Literal["ok", "unavailable"]
    mongodb: Literal["ok", "degraded"]
    outbox_backlog: int
    outbox_oldest_age_s: float
    webhook_backlog: int
    webhook_oldest_age_s: float


@router.get("/live", response_model=Live)
async def live() -> Live:
    """Liveness: 200 while the process runs."""
    return Live()


@router.get("/ready", response_model=Ready, responses=problem_responses(503))
async def ready(request: Request) -> Ready | JSONResponse:
    """Readiness: PostgreSQL reachable (else 503); event store and outbox state reported.

    MongoDB down is `degraded`, not unready: writes go on through the outbox and the relay
    delivers the backlog when it is back.
    """
    try:
        async with asyncio.timeout(3):
            status = await outbox_status(request.app.state.sessionmaker)
            webhooks = await webhook_status(request.app.state.sessionmaker)
    except Exception:
        body = Ready(
            postgres="unavailable",
            mongodb="degraded",
            outbox_backlog=0,
            outbox_oldest_age_s=0,
            webhook_backlog=0,
            webhook_oldest_age_s=0,
        )
        return JSONResponse(body.model_dump(), status_code=503)
    event_store_ok = await request.app.state.event_store_ping()
    return Ready(
        postgres="ok",
        mongodb="ok" if event_store_ok else "degraded",
        outbox_backlog=status.backlog,
        outbox_oldest_age_s=status.oldest_age_s,
        webhook_backlog=webhooks.pending,
        webhook_oldest_age_s=webhooks.oldest_age_s,
    )
