"""Query parameter types shared by list, report and activity routes."""

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def _reject_numbers(value: object) -> object:
    # Pydantic would read "0.5" as a Unix timestamp; the schema promises ISO 8601, so a number is
    # a client mistake to report, not a date in 1970 to answer.
    if isinstance(value, int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value.strip())
    ):
        raise ValueError("expected an ISO 8601 date-time such as 2026-11-22T09:30:00Z")
    return value


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcDateTime = Annotated[datetime, BeforeValidator(_reject_numbers), AfterValidator(_as_utc)]
"""An ISO 8601 date-time; one without an offset is taken as UTC."""
