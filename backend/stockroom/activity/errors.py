"""Errors of the activity domain."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from stockroom.http.errors import ServiceUnavailable, ValidationFailed


class InvalidCursor(ValidationFailed):
    """A pagination cursor that was not issued by us, was altered, or belongs to other filters."""

    code = "invalid_cursor"
    default_detail = "the cursor is not valid for this query; start again without it"


class InvalidFilter(ValidationFailed):
    code = "invalid_filter"


class EventStoreUnavailable(ServiceUnavailable):
    code = "event_store_unavailable"
    default_detail = "the activity event store is unavailable; retry later"


async def guard(awaitable: Awaitable[Any]) -> Any:
    """Run an event-store call; a store that cannot be reached is a 503, not a 500."""
    from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

    try:
        return await awaitable
    except (ConnectionFailure, ServerSelectionTimeoutError):
        raise EventStoreUnavailable() from None
