"""Value types every layer may use (the bottom layer: imports nothing of ours)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

# C0 and C1 control characters except tab and newline, and lone surrogates (a JSON body can
# carry "\ud800", which neither PostgreSQL nor a UTF-8 encoder accepts as text).
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
UNSAFE_TEXT_MESSAGE = (
    "must not contain NUL or other control characters (tab and newline are allowed)"
)


def has_unsafe_characters(value: str) -> bool:
    return _UNSAFE_CHARACTERS.search(value) is not None


def refuse_unsafe_characters(value: str) -> str:
    """`value` unchanged, or ValueError (a 422) if it holds a character no text input accepts.

    PostgreSQL cannot store NUL at all (it used to be a 500), and the other control characters
    only ever arrive by mistake or to confuse a log, a terminal or a spreadsheet.
    """
    if _UNSAFE_CHARACTERS.search(value):
        raise ValueError(UNSAFE_TEXT_MESSAGE)
    return value


def _refuse_unsafe_input(value: object) -> object:
    # Before any other step: stripping would silently drop a trailing "\x85" or "\x1f" (Python
    # counts them as whitespace), and the caller must hear about such text, not lose part of it.
    return refuse_unsafe_characters(value) if isinstance(value, str) else value


SAFE_TEXT = BeforeValidator(_refuse_unsafe_input)
"""The check of `SafeText`, for text with limits: `Annotated[str, StringConstraints(...),
SAFE_TEXT]`. It runs on the text as sent, before stripping, lengths and patterns; write it last,
so that the constraints before it stay on the string itself (pydantic applies constraints written
after a validator generically: lengths before stripping)."""

SafeText = Annotated[str, SAFE_TEXT]
"""Text from a caller (a body field, a query parameter, a CSV cell): NUL or another control
character other than tab and newline is a 422. Every text input is of this type."""
