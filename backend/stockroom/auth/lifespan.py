"""Auth work at application start (first admin, permission-denied auditing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI


@asynccontextmanager
async def auth_startup(app: FastAPI) -> AsyncIterator[None]:
    yield
