"""The per-request session dependency, and the transaction a use case runs in.

Authentication reads the caller in a transaction it begins on the request's session and leaves
open; the use case that follows takes that transaction over (`transaction(session)`) instead of
committing one and beginning another. A request then costs one pool checkout, one BEGIN and one
COMMIT, not two of each. The session lives until the route function returns (dependency scope
"function"), so a transaction nobody took over (a read served from the event store, a refusal)
is rolled back then, before a streamed response starts, never held open while it streams.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.pool import Pool, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

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


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session's transaction (checked out if needed).

    SQLAlchemy's asyncpg adapter sends BEGIN only with the first statement *it* executes, so a
    statement sent here before that runs as its own transaction: hot paths use this to spend
    one round trip where BEGIN, the statement and COMMIT would spend three.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    return driver


@asynccontextmanager
async def single_statement(session: AsyncSession) -> AsyncIterator[asyncpg.Connection]:
    """For a use case that is one self-committing statement on the driver connection.

    Takes over the request's transaction (or begins one); ends it when the block ends, which
    costs no round trip when SQLAlchemy never started a transaction on the connection. If it
    had (or the connection is a test's, inside an outer transaction), the statement ran in that
    transaction and the commit here commits it, as `transaction` would.
    """
    if not session.info.pop(_REQUEST_TRANSACTION, False) or not session.in_transaction():
        await session.begin()
    try:
        yield await driver_connection(session)
    except BaseException:
        await session.rollback()
        raise
    await session.commit()


@dataclass(frozen=True, slots=True)
class DriverQuery:
    """A statement compiled once for the asyncpg driver: its SQL and its parameters' names in
    positional order. Hot paths (the principal of every authenticated request, a product by id)
    run one: sent on the driver connection it skips building the statement and SQLAlchemy's
    per-statement work and, before any other statement, the BEGIN and COMMIT of a transaction
    of its own."""

    sql: str
    names: tuple[str, ...]
    constants: dict[str, Any]  # the values of the statement's own literals (`coalesce(x, 0)`)

    @classmethod
    def of(cls, statement: Any) -> DriverQuery:
        compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        constants = {k: v for k, v in compiled.params.items() if v is not None}
        return cls(str(compiled), tuple(compiled.positiontup or ()), constants)

    async def fetchrow(
        self, session: AsyncSession | asyncpg.Connection, params: dict[str, Any]
    ) -> Any:
        """One row, on the driver connection (`driver_connection`, or a leased one:
        `driver_lease`): inside the session's transaction if SQLAlchemy started one, else as a
        statement of its own."""
        if isinstance(session, AsyncSession):
            connection = await driver_connection(session)
        else:
            connection = session
        values = (params[n] if n in params else self.constants[n] for n in self.names)
        return await connection.fetchrow(self.sql, *values)


# On that path SQLAlchemy closes the connect coroutine it did not await, which Python reports as
# a RuntimeWarning; it is the expected outcome here (the greenlet checkout connects instead).
warnings.filterwarnings(
    "ignore", message="coroutine 'connect' was never awaited", category=RuntimeWarning
)


def _checkout_now(pool: Pool) -> PoolProxiedConnection | None:
    """A pooled connection taken without leaving the event loop's greenlet, or None.

    SQLAlchemy's async pool runs its checkout in a greenlet (`greenlet_spawn`) because it may
    have to wait for a connection, connect or recycle one. When a connection is idle none of
    that happens and the checkout is plain synchronous code: about 30 us of CPU less per
    request than `AsyncEngine.raw_connection()`. Whenever it would have to wait or connect,
    SQLAlchemy raises MissingGreenlet before doing any I/O (the pool's counters and the
    connection record are restored on that path) and the caller takes the greenlet route.
    """
    if pool.checkedin() == 0:  # type: ignore[attr-defined]
        return None
    try:
        return pool.connect()
    except MissingGreenlet:
        return None


@asynccontextmanager
async def driver_lease(sessionmaker: Any) -> AsyncIterator[asyncpg.Connection]:
    """A pooled asyncpg connection with no SQLAlchemy session, transaction or connection
    object around it: for hot paths whose statements are each their own transaction (the
    principal, `stock_post`, a product by id). Returned to the pool when the block ends.

    A sessionmaker bound to something other than an engine (the tests' connection in an outer
    transaction) gets its session's driver connection instead, in a transaction committed when
    the block ends and rolled back if it raises (`single_statement`).
    """
    engine = getattr(sessionmaker, "kw", {}).get("bind")
    if not isinstance(engine, AsyncEngine):
        async with sessionmaker() as session, single_statement(session) as connection:
            yield connection
        return
    pool = engine.sync_engine.pool
    fairy = _checkout_now(pool) or await engine.raw_connection()
    driver = fairy.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    cancelled = False
    try:
        yield driver
    except asyncio.CancelledError:
        cancelled = True
        raise
    finally:
        if cancelled or driver.is_closed():
            # The server went away under it, or a statement was cut off midway (its state
            # on the wire is unknown): never hand this connection out again.
            await greenlet_spawn(fairy.invalidate)
        elif pool.overflow() > 0:  # type: ignore[attr-defined]
            # The check-in may close an overflow connection, which awaits: in a greenlet.
            await greenlet_spawn(fairy.close)
        else:
            fairy.close()
