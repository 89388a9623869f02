"""Value types every layer may use: money and UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer

MoneyStr = Annotated[
    Decimal,
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str, when_used="json"),
    Field(json_schema_extra={"type": "string", "format": "decimal", "example": "10.50"}),
]
"""An amount of money in a response: a decimal string with two places ("10.50")."""

MoneyIn = Annotated[
    Decimal,
    Field(max_digits=12, decimal_places=2, description='a decimal string like "10.50"'),
]
"""An amount of money in a request, as `Numeric(12, 2)` can hold it. Bounds (`ge=0`, `gt=0`) are
added where the field is declared."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """The same instant in UTC; a naive value is taken as UTC already (BSON dates, CLI input)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
