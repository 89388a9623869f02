"""LIKE patterns from user text, written once for every search."""

from __future__ import annotations


def like_pattern(text: str) -> str:
    """`%text%` for ILIKE ... ESCAPE '\\', with the user's own `%`, `_` and `\\` taken
    literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
