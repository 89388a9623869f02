"""`run_idempotent`: a use case made idempotent by the key its request carries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.db.session import transaction
from stockroom.idempotency import repository
from stockroom.idempotency.keys import IdempotencyKey, IdempotentRequestInProgress, StoredResponse
from stockroom.problems import AppError, problem_body

M = TypeVar("M", bound=BaseModel)


async def run_idempotent(
    session: AsyncSession,
    claim: IdempotencyKey | None,
    work: Callable[[], Awaitable[M]],
    *,
    status: int,
) -> M | StoredResponse:
    """Run `work` in one transaction on `session` (see `db.session.transaction`), made
    idempotent by `claim`.

    Returns the fresh result, or the stored response of an earlier request with the same key.
    `work` runs inside the transaction this function opens; it must not open its own.
    """
    if claim is None:
        async with transaction(session):
            return await work()
    try:
        async with transaction(session):
            if not await repository.try_lock(session, claim):
                raise IdempotentRequestInProgress()
            stored = await repository.stored(session, claim)
            if stored is not None:
                return stored
            result = await work()
            await repository.save(session, claim, status, result.model_dump(mode="json"))
            return result
    except AppError as exc:
        await remember_refusal(session, claim, exc)
        raise


def is_stored(exc: AppError) -> bool:
    """Whether a refusal is kept for the key's retries: client errors, except 422 (fix the
    request and retry), 401/403 (they depend on the caller, not the request) and the claim's
    own 409 (the first request's outcome will be the stored one)."""
    if exc.status >= 500 or exc.status == 422 or exc.status in {401, 403}:
        return False
    return not isinstance(exc, IdempotentRequestInProgress)


async def remember_refusal(session: AsyncSession, claim: IdempotencyKey, exc: AppError) -> None:
    """Store `exc`'s problem body for the key, in a transaction of its own, if `is_stored`.

    For use cases that claim the key themselves (in one statement with their write) and were
    refused before writing anything."""
    if not is_stored(exc):
        return
    async with transaction(session):
        if not await repository.try_lock(session, claim):
            return  # a retry is already running; its outcome will be the stored one
        if await repository.stored(session, claim) is not None:
            return
        await repository.save(session, claim, exc.status, problem_body(exc))
