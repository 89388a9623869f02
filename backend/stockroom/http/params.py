"""Query parameter types shared by list, report and activity routes."""

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

from stockroom.types import as_utc

_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def _reject_numbers(value: object) -> object:
    # Pydantic would read "0.5" as a Unix timestamp; the schema promises ISO 8601, so a number is
    # a client mistake to report, not a date in 1970 to answer.
    if isinstance(value, int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value.strip())
    ):
        raise ValueError("expected an ISO 8601 date-time such as 2026-11-22T09:30:00Z")
    return value


UtcDateTime = Annotated[datetime, BeforeValidator(_reject_numbers), AfterValidator(as_utc)]
"""An ISO 8601 date-time, as UTC; one without an offset is taken as UTC."""
