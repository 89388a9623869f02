"""Errors of the activity domain."""

from __future__ import annotations

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
