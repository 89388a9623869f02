"""The copies the patched mongomock cursor returns (`stockroom.events.mongomock_patch`): what
mongomock itself would return for a stored document and a projection (deep copies, dates made
aware in UTC), built once per cursor instead of per document.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# Types `copy.copy` returns as they are, and mongomock's date conversion leaves alone.
_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes})


def _aware_copy(value: Any) -> Any:
    """What mongomock returns for a stored value (a deep copy with dates made aware in UTC),
    in one pass for the plain types; anything else goes through mongomock's own two."""
    kind = type(value)
    if kind is dict:
        return {key: _aware_copy(item) for key, item in value.items()}
    if kind is list:
        return [_aware_copy(item) for item in value]
    if kind is datetime:
        # In `datetime.UTC`, which mongomock's own (equal) fixed offset is not: that one is
        # pure Python, and made every later `astimezone` of a rollup date cost ~100 us.
        return value.replace(tzinfo=UTC)
    if kind in _IMMUTABLE:
        return value
    from mongomock import collection, helpers

    copied: Any = collection._copy_field(value, dict)  # type: ignore[no-untyped-call]
    return helpers.make_datetime_timezone_aware_in_document(copied)  # type: ignore[no-untyped-call]


def _copier(collection: Any, projection: Any) -> Callable[[Any], Any]:
    """The copy mongomock makes of a stored document under `projection` (dates made aware):
    in one pass for no projection or an inclusion of top-level fields, else mongomock's."""
    if projection is None or (isinstance(projection, dict) and not projection):
        return _aware_copy
    included = dict(projection) if isinstance(projection, dict) else None
    keep_id = included.pop("_id", 1) if included is not None else None
    if (
        included
        and keep_id in (0, 1)
        and all(value == 1 for value in included.values())
        and not any("." in key or key.startswith("$") for key in included)
    ):

        def project(document: Any) -> Any:
            # In the document's order, `_id` last: as mongomock's projection builds it.
            copied = {k: _aware_copy(v) for k, v in document.items() if k in included}
            copied.pop("_id", None)
            if keep_id and "_id" in document:
                copied["_id"] = _aware_copy(document["_id"])
            return copied

        return project
    if (
        included
        and keep_id in (0, 1)
        and all(value == 1 for value in included.values())
        and "$" not in "".join(included)
    ):
        return _nested_copier(included, keep_id) or _fallback(collection, projection)
    return _fallback(collection, projection)


def _nested_copier(included: dict[str, Any], keep_id: Any) -> Callable[[Any], Any] | None:
    """mongomock's copy under an inclusion of dotted fields (`actor.id`), with the projection
    prepared once instead of for every document; None when mongomock refuses it."""
    from mongomock import collection

    try:
        combined = collection._combine_projection_spec(included)  # type: ignore[no-untyped-call]
    except Exception:
        return None
    project_by_spec: Any = collection._project_by_spec

    def project(document: Any) -> Any:
        try:
            # One pass (the rollups' read of raw events goes through here for every event).
            copied = _include(document, combined)
            if keep_id and "_id" in document:
                copied["_id"] = _aware_copy(document["_id"])
            return copied
        except _Delegate:
            pass
        copied = project_by_spec(document, combined, is_include=True, container=dict)
        if keep_id and "_id" in document:
            copied["_id"] = document["_id"]
        return _aware_copy(copied)

    return project


class _Delegate(Exception):
    """A document `_include` leaves to mongomock (an array on a projected path)."""


_ABSENT = object()


def _include(document: Any, spec: Any) -> dict[str, Any]:
    """mongomock's `_project_by_spec` (inclusion) followed by its aware copy, in one pass, for
    documents whose projected paths hold no arrays."""
    copied: dict[str, Any] = {}
    for key, value in document.items():
        sub = spec.get(key, _ABSENT)
        if sub is _ABSENT:
            continue
        if isinstance(sub, dict):
            if isinstance(value, dict):
                copied[key] = _include(value, sub)
            elif isinstance(value, list | tuple):
                raise _Delegate
        else:
            copied[key] = _aware_copy(value)
    return copied


def _fallback(collection: Any, projection: Any) -> Callable[[Any], Any]:
    from mongomock import helpers

    make_aware: Any = helpers.make_datetime_timezone_aware_in_document

    def fallback(document: Any) -> Any:
        return make_aware(collection._copy_only_fields(document, projection, dict))

    return fallback
