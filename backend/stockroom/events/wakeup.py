"""Wake the relays of this process as soon as a transaction holding outbox rows commits.

A wake-up only: relays also poll every `RELAY_POLL_INTERVAL_S` (at most 1 s), which covers
commits made by other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from sqlalchemy import event
from sqlalchemy.orm import Session

OUTBOX_PENDING = "stockroom.outbox_pending"

_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


@contextlib.contextmanager
def subscription(wake: asyncio.Event) -> Iterator[None]:
    """Set `wake` whenever a transaction with outbox rows commits in this process."""
    entry = (asyncio.get_running_loop(), wake)
    _waiters.add(entry)
    try:
        yield
    finally:
        _waiters.discard(entry)


def mark_outbox_pending(session: Session) -> None:
    session.info[OUTBOX_PENDING] = True


def wake_relays() -> None:
    """Wake every relay subscribed in this process (thread-safe)."""
    for loop, wake in list(_waiters):
        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(wake.set)


@event.listens_for(Session, "after_commit")
def _wake_relays_after_outbox_commit(session: Session) -> None:
    if session.info.pop(OUTBOX_PENDING, False):
        wake_relays()


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(OUTBOX_PENDING, None)
