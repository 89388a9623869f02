"""Changes to mongomock for the in-process event store (`_patch_mongomock`, applied once by
`stockroom.events.store.in_process_event_store`): bulk writes that take `sort`, `_id` lookups,
a sorted date index per collection, and a cursor that does not copy its results per document.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from operator import itemgetter
from typing import Any

from stockroom.events.documents import COLLECTION
from stockroom.events.mongomock_copy import _aware_copy, _copier
from stockroom.events.rollups import ROLLUPS
from stockroom.events.time_index import TimeIndex

_COMPARISONS: dict[str, Callable[[datetime, datetime], bool]] = {
    "$gte": operator.ge,
    "$gt": operator.gt,
    "$lte": operator.le,
    "$lt": operator.lt,
}


@dataclass(frozen=True, slots=True)
class _TimeRange:
    """A filter split in two: its `occurred_at` range of dates, and everything else."""

    low: tuple[datetime, str] | None  # (bound, "$gte" or "$gt")
    high: tuple[datetime, str] | None  # (bound, "$lte" or "$lt")
    rest: dict[str, Any]

    def admits(self, value: datetime) -> bool:
        low, high = self.low, self.high
        return (low is None or _COMPARISONS[low[1]](value, low[0])) and (
            high is None or _COMPARISONS[high[1]](value, high[0])
        )


def _split_time_range(filter: Any, field: str = "occurred_at") -> _TimeRange | None:
    """The filter's range on `field` (a date) when it is only `$gte/$gt/$lte/$lt` on naive (UTC)
    datetimes, else None."""
    if type(filter) is not dict:
        return None
    bounds = filter.get(field)
    if type(bounds) is not dict or not bounds or not bounds.keys() <= _COMPARISONS.keys():
        return None
    if not all(type(value) is datetime and value.tzinfo is None for value in bounds.values()):
        return None
    # The strictest bound on each side: the highest low ($gt over $gte on a tie) and the
    # lowest high ($lt over $lte on a tie).
    lows = [(value, op) for op, value in bounds.items() if op in ("$gte", "$gt")]
    highs = [(value, op) for op, value in bounds.items() if op in ("$lte", "$lt")]
    low = max(lows, key=lambda bound: (bound[0], bound[1] == "$gt")) if lows else None
    high = min(highs, key=lambda bound: (bound[0], bound[1] == "$lte")) if highs else None
    rest = {key: value for key, value in filter.items() if key != field}
    return _TimeRange(low, high, rest)


# The date each in-process collection is indexed by (see `stockroom.events.time_index`).
_INDEXED_FIELDS = {COLLECTION: "occurred_at", ROLLUPS: "bucket_start"}


def _index_of(store: Any) -> TimeIndex | None:
    """The date index of a mongomock collection store (created on first use), None for a
    collection without one."""
    index: TimeIndex | None = getattr(store, "_stockroom_index", None)
    if index is None and store.name in _INDEXED_FIELDS:
        events = store.name == COLLECTION
        index = store._stockroom_index = TimeIndex(
            _INDEXED_FIELDS[store.name],
            "type" if events else None,
            # `/activity?actor_id=` pages: an actor's events, like `actor.id_1_occurred_at_1`.
            ("actor", "id") if events else None,
        )
        index.dirty = bool(store._documents)
    return index


def _top_candidates(cursor: Any) -> list[Any] | None:
    """For a find sorted first by its collection's indexed date, with a limit: the documents
    that can be among its first `skip + limit` (see `TimeIndex.top`), or None when the find is
    not of that shape (mongomock then answers it whole)."""
    from mongomock import filtering

    filter_applies: Any = filtering.filter_applies
    store = cursor.collection._store
    index = _index_of(store)
    sort, spec = cursor._sort, cursor._spec
    if index is None or not cursor._limit or cursor._skip < 0 or not sort:
        return None
    keys = list(sort.items() if isinstance(sort, dict) else sort)
    first_key, direction = keys[0]
    if first_key != index.field or any(key.startswith("$") for key, _ in keys):
        return None
    if type(spec) is not dict:
        return None
    time_range = _split_time_range(spec, index.field)
    if time_range is not None:
        low, high, rest = time_range.low, time_range.high, time_range.rest
    else:
        low, high, rest = None, None, spec
    documents = store._documents
    candidates = _narrowed(index, documents, rest).top(
        documents,
        low,
        high,
        (lambda document: filter_applies(rest, document)) if rest else (lambda _: True),
        descending=direction < 0,
        count=cursor._skip + abs(cursor._limit),
    )
    candidates += [ranked for ranked in index.others(documents) if filter_applies(spec, ranked[1])]
    return list(_in_store_order(candidates))


def _narrowed(index: TimeIndex, documents: Any, rest: dict[str, Any]) -> TimeIndex:
    """The index to walk for a filter whose non-date part is `rest`: the partition of its
    `actor.id` when it asks for one string there (the actor index), else the whole index.
    Either way every candidate is still tested against the whole filter."""
    value = rest.get("actor.id")
    if type(value) is str and index.partition == ("actor", "id"):
        part = index.part(documents, value)
        if part is not None:
            return part
    return index


def _in_store_order(ranked: list[tuple[int, Any]]) -> Iterator[Any]:
    """Documents in the store's insertion order, the order mongomock answers (and breaks sort
    ties) in."""
    ranked.sort(key=itemgetter(0))
    return (document for _, document in ranked)


def _plan(cursor: Any) -> tuple[list[Any], Callable[[Any], Any]] | None:
    """How a cursor of an indexed collection gets its results: the candidate documents (a
    superset, for a sorted and limited find) and the copy of each it returns; None to leave
    the cursor to mongomock (another collection, an unsupported sort)."""
    collection = cursor.collection
    sort = cursor._sort
    keys = list(sort.items() if isinstance(sort, dict) else sort or [])
    if (
        _index_of(collection._store) is None
        or not collection.codec_options.tz_aware
        or any(key.startswith("$") for key, _ in keys)
    ):
        return None
    candidates = _top_candidates(cursor)
    if candidates is None:
        candidates = list(collection._iter_documents(cursor._spec))
    return candidates, _copier(collection, cursor._projection)


def _sorted(documents: list[Any], sort: Any) -> list[Any]:
    """mongomock's own sort (`Collection._get_dataset`): stable, key by key from the last."""
    from mongomock import filtering

    resolve_sort_key: Any = filtering.resolve_sort_key
    keys = list(sort.items() if isinstance(sort, dict) else sort or [])
    for key, direction in reversed(keys):
        documents = sorted(
            documents, key=partial(_sort_key, resolve_sort_key, key), reverse=direction < 0
        )
    return documents


def _only_on(spec: Any, key: str) -> bool:
    """Whether a filter tests nothing but the top-level field `key`."""
    return type(spec) is dict and spec.keys() <= {key}


def _sort_key(resolve: Any, key: str, document: Any) -> Any:
    return resolve(key, document)


def _patch_mongomock() -> None:
    """Changes to mongomock 4.3, applied once, for the in-process store only.

    - pymongo 4.11+ passes `sort` to bulk replace/update operations; mongomock predates it.
    - mongomock finds a document by `_id` by testing every document: an upsert keyed by `_id`
      (every relay write) would cost O(collection). Equality on a string `_id` becomes a lookup.
    - mongomock tests every document against the whole filter in Python (about 30 us each), so
      every activity page, export window and dashboard read cost O(collection). Each of the two
      collections keeps a sorted date index (`occurred_at` of events, `bucket_start` of
      rollups; `stockroom.events.time_index`), kept in step with every write. A filter with a
      range of dates on that field visits only the documents of its range (only the rest of
      the filter goes through mongomock), and a find sorted first by that date with a limit
      visits only its first `skip + limit` matches and their ties, so a dashboard costs its
      own rollup documents and an `/activity` page its own events. The answers are exactly
      mongomock's, in its order (tests/events/test_in_process_store.py).
    - mongomock's cursor copies its remaining results for every document it yields, so reading
      n documents from one cursor cost O(n^2); it now indexes into them.
    """
    from mongomock import filtering, helpers
    from mongomock.collection import BulkOperationBuilder, Collection, Cursor
    from mongomock.store import CollectionStore

    filter_applies: Any = filtering.filter_applies

    builder: Any = BulkOperationBuilder
    if getattr(builder, "_stockroom_patched", False):
        return
    add_replace, add_update = builder.add_replace, builder.add_update

    def patched_replace(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        return add_replace(self, *args, **kwargs)

    def patched_update(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        return add_update(self, *args, **kwargs)

    builder.add_replace = patched_replace
    builder.add_update = patched_update
    builder._stockroom_patched = True

    collection: Any = Collection
    iter_documents = collection._iter_documents

    def patched_iter_documents(self: Any, filter: Any) -> Any:
        if type(filter) is dict and len(filter) == 1 and isinstance(filter.get("_id"), str):
            key = filter["_id"]
            return iter([self._store[key]] if key in self._store else [])
        index = _index_of(self._store)
        time_range = _split_time_range(filter, index.field) if index is not None else None
        if index is None or time_range is None or self._store.is_empty:
            return iter_documents(self, filter)
        # Stored dates are naive UTC, like the filter's by now: the index's bisection on them
        # is what MongoDB's index bounds do. Documents without a date (a missing field, an
        # array, another type) go to mongomock's own filter, whole.
        documents, rest = self._store._documents, time_range.rest
        matched = [
            ranked
            for ranked in _narrowed(index, documents, rest).in_range(
                documents, time_range.low, time_range.high
            )
            if not rest or filter_applies(rest, ranked[1])
        ]
        matched += [
            ranked for ranked in index.others(documents) if filter_applies(filter, ranked[1])
        ]
        return _in_store_order(matched)

    collection._iter_documents = patched_iter_documents

    # Keep each collection's date index in step with its store: every insert, replacement
    # and delete goes through the store's item methods; an update changes a stored document
    # in place, so the document is indexed again (or, for a multi-document update, the index
    # is rebuilt at the next read).
    store: Any = CollectionStore
    set_item, del_item, drop = store.__setitem__, store.__delitem__, store.drop

    def patched_set_item(self: Any, key: Any, value: Any) -> None:
        index = _index_of(self)  # (before the first document: an index of none, not dirty)
        set_item(self, key, value)
        if index is not None:
            index.stored(key, value)

    def patched_del_item(self: Any, key: Any) -> None:
        del_item(self, key)
        index = _index_of(self)
        if index is not None:
            index.removed(key)

    def patched_drop(self: Any) -> None:
        drop(self)
        index = _index_of(self)
        if index is not None:
            index.clear()

    store.__setitem__, store.__delitem__, store.drop = (
        patched_set_item,
        patched_del_item,
        patched_drop,
    )
    update = collection._update

    def patched_collection_update(
        self: Any, spec: Any, document: Any, *args: Any, **kwargs: Any
    ) -> Any:
        result = update(self, spec, document, *args, **kwargs)
        index = _index_of(self._store)
        if index is not None and result.get("nModified"):
            key = spec.get("_id") if type(spec) is dict and len(spec) == 1 else None
            if isinstance(key, str) and key in self._store._documents:
                index.stored(key, self._store._documents[key])
            else:
                index.dirty = True
        return result

    collection._update = patched_collection_update

    cursor: Any = Cursor

    def patched_next(self: Any) -> Any:
        results = self._compute_results()  # all of them, computed once per query
        position = self._skip + self._emitted
        if position >= len(results) or (self._limit and self._emitted >= abs(self._limit)):
            raise StopIteration
        self._emitted += 1
        return results[position]

    cursor.__next__ = cursor.next = patched_next

    # A find on an indexed collection gets its documents from the index (a sorted, limited
    # find led by the indexed date, such as `/activity`'s newest-first pages, only its first
    # `skip + limit` matches and their ties), and copies them in one pass instead of
    # mongomock's two (a generic deep copy, then one more to make dates aware).
    compute_results = cursor._compute_results

    def patched_compute_results(self: Any, with_limit_and_skip: bool = False) -> Any:
        fresh = self._results and self._factory_last_generated_results == self._factory
        plan = None if fresh else _plan(self)
        if plan is None:
            return compute_results(self, with_limit_and_skip)
        candidates, copy = plan
        self._results = [copy(document) for document in _sorted(candidates, self._sort)]
        self._factory_last_generated_results = self._factory
        # (Sliced here: mongomock would compute an empty answer again, in full.)
        if not with_limit_and_skip:
            return self._results
        results = self._results[self._skip :]
        return results[: abs(self._limit)] if self._limit else results

    cursor._compute_results = patched_compute_results

    # `distinct` (the types of a `stock.*` filter) reads the stored documents rather than a
    # copy of each.
    distinct = collection.distinct

    def patched_distinct(self: Any, key: Any, filter: Any = None, session: Any = None) -> Any:
        index = _index_of(self._store)
        if session or index is None or not isinstance(key, str):
            return distinct(self, key, filter, session)
        candidates: Any = filtering.iter_key_candidates
        naive: Any = helpers.patch_datetime_awareness_in_document
        nothing: Any = getattr(filtering, "NOTHING")  # noqa: B009 (not in its type stubs)
        spec = naive({} if filter is None else filter)
        unique: set[Any] = set()
        documents: Any
        counted = index.counted_values(self._store._documents)
        if counted is not None and key == index.counted and _only_on(spec, key):
            # The counted values, each tested against the filter as a document holding only
            # it (the filter tests that field alone), instead of every document.
            values, uncounted = counted
            unique.update(value for value in values if filter_applies(spec, {key: value}))
            documents = [document for document in uncounted if filter_applies(spec, document)]
        else:
            documents = self._iter_documents(spec)
        for document in documents:
            for values in candidates(key, document):
                if values is nothing:
                    continue
                for value in values if isinstance(values, tuple | list) else [values]:
                    value = _aware_copy(value)
                    unique.add(helpers.hashdict(value) if isinstance(value, dict) else value)
        return [dict(v) if isinstance(v, helpers.hashdict) else v for v in unique]

    collection.distinct = patched_distinct
