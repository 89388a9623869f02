"""A loopback TCP proxy in front of PostgreSQL that counts the client's round trips.

A round trip is a burst of bytes from the client after the server has spoken: the client sends
its messages (asyncpg sends Parse/Bind/Execute/Sync of one statement together), then waits for
the answer. Counting bursts needs no protocol parsing and counts what latency costs: each one
is a wait for the server. Test code points the app's database URL at `url_for(database)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import make_url


@dataclass
class RoundTripCounter:
    port: int = 0
    round_trips: int = 0
    connections: set[asyncio.Future[Any]] = field(default_factory=set)

    def reset(self) -> None:
        self.round_trips = 0

    def url_for(self, database_url: str) -> str:
        """`database_url` (a SQLAlchemy URL) sent through this proxy instead."""
        url = make_url(database_url)
        query = {k: v for k, v in url.query.items() if k != "host"}
        return url.set(host="127.0.0.1", port=self.port, query=query).render_as_string(False)


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    state: dict[str, bool],
    counter: RoundTripCounter,
    *,
    from_client: bool,
) -> None:
    try:
        while data := await reader.read(65536):
            if from_client:
                if state["server_spoke"]:
                    counter.round_trips += 1
                    state["server_spoke"] = False
            else:
                state["server_spoke"] = True
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with suppress(Exception):
            writer.close()


@asynccontextmanager
async def round_trip_counter(database_url: str) -> AsyncIterator[RoundTripCounter]:
    """A proxy to the server of `database_url` (TCP or a Unix socket folder) on a free port."""
    url = make_url(database_url)
    socket_dir: Any = url.query.get("host")
    counter = RoundTripCounter()

    async def open_upstream() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if socket_dir:
            path = f"{socket_dir}/.s.PGSQL.{url.port or 5432}"
            return await asyncio.open_unix_connection(path)
        return await asyncio.open_connection(url.host or "127.0.0.1", url.port or 5432)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await open_upstream()
        state = {"server_spoke": True}
        both = asyncio.gather(
            _pipe(reader, up_writer, state, counter, from_client=True),
            _pipe(up_reader, writer, state, counter, from_client=False),
        )
        task = asyncio.ensure_future(both)
        counter.connections.add(task)
        await task

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    counter.port = server.sockets[0].getsockname()[1]
    try:
        yield counter
    finally:
        server.close()
        for task in list(counter.connections):
            task.cancel()
        await asyncio.gather(*counter.connections, return_exceptions=True)
