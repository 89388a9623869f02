"""Human-readable document numbers (`PO-000001`) drawn from a database sequence."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def next_number(session: AsyncSession, prefix: str, sequence: str) -> str:
    """The next number of `sequence` as `{prefix}-` and at least six digits. Unique whatever the
    concurrency (sequences never hand a value out twice); gaps after a rollback are expected."""
    value = await session.scalar(
        text("SELECT nextval(CAST(:sequence AS regclass))"), {"sequence": sequence}
    )
    return f"{prefix}-{int(value or 0):06d}"
