"""docs/clients.md tells a web app every problem `code` the API can answer."""

from __future__ import annotations

from pathlib import Path

import stockroom.main  # noqa: F401  (imports every router, so every domain error is defined)
from stockroom.http.errors import _STATUS_CODES, AppError

DOC = Path(__file__).resolve().parents[2] / "docs" / "clients.md"


def _codes(cls: type[AppError]) -> set[str]:
    return {cls.code}.union(*(_codes(sub) for sub in cls.__subclasses__()))


def test_every_problem_code_is_in_the_clients_table() -> None:
    table = DOC.read_text()
    codes = _codes(AppError) | {code for code, _ in _STATUS_CODES.values()}
    missing = sorted(code for code in codes if f"`{code}`" not in table)
    assert missing == []
    assert len(codes) > 40
