from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from stockroom.http.params import UtcDateTime

adapter: TypeAdapter[datetime] = TypeAdapter(UtcDateTime)


def test_iso_dates_are_accepted_and_naive_ones_taken_as_utc() -> None:
    assert adapter.validate_python("2026-11-22T09:30:00") == datetime(
        2026, 11, 22, 9, 30, tzinfo=UTC
    )
    aware = adapter.validate_python("2026-11-22T09:30:00+02:00")
    assert aware.utcoffset() is not None
    assert aware.astimezone(UTC).hour == 7


@pytest.mark.parametrize("value", ["0.5", "1700000000", "-3", 12, 0.5])
def test_numbers_are_not_dates(value: object) -> None:
    with pytest.raises(ValidationError, match="ISO 8601"):
        adapter.validate_python(value)
