"""The per-request session dependency, and the transaction a use case runs in.

Authentication reads the caller in a transaction it begins on the request's session and leaves
open; the use case that follows takes that transaction over (`transaction(session)`) instead of
committing one and beginning another. A request then costs one pool checkout, one BEGIN and one
COMMIT, not two of each. The session lives until the route function returns (dependency scope
"function"), so a transaction nobody took over (a read served from the event store, a refusal)
is rolled back then, before a streamed response starts, never held open while it streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

_REQUEST_TRANSACTION = "stockroom.request_transaction"


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def begin_request_transaction(session: AsyncSession) -> None:
    """Begin the transaction the request's use case will take over (see `transaction`)."""
    await session.begin()
    session.info[_REQUEST_TRANSACTION] = True


@asynccontextmanager
async def transaction(session: AsyncSession) -> AsyncIterator[None]:
    """`async with session.begin()`, or, when authentication began the request's transaction,
    that one: committed when the block ends, rolled back if it raises. Nesting is refused as
    `session.begin()` refuses it."""
    if not session.info.pop(_REQUEST_TRANSACTION, False) or not session.in_transaction():
        async with session.begin():
            yield
        return
    try:
        yield
    except BaseException:
        await session.rollback()
        raise
    await session.commit()
