"""A sorted date index for the in-process store's two collections (mongomock has none).

mongomock answers every query by testing every stored document, so before this each dashboard
or `/activity` page cost O(events) however narrow its time range. `TimeIndex` keeps the stored
documents' dates (`occurred_at` of events, `bucket_start` of rollups) sorted, so a query
bounded in time visits only the documents of its range, and a sorted, limited query
(`/activity`'s newest-first pages) visits only its page. `stockroom.events.store` wires it into
mongomock; the answers stay exactly mongomock's (tests/events/test_in_process_store.py).

Writes are cheap whatever their order (the bench loads 200,000 events in random time order):
an insert appends to `pending`, sorted into `entries` by the next read (Timsort merges the two
sorted runs in linear time); a delete or a replaced document leaves its old entry behind,
recognized as stale (it is no longer its key's live entry) and swept out when stale entries
are half the list. Answers come in the store's insertion order, as mongomock's do.

An index may also be *partitioned* by a string subfield (`actor.id` of events): each value
keeps its own sorted index of the same documents, with the same ranks, so `/activity?actor_id=`
walks only that actor's events (about 1/200th of them in the bench) instead of testing every
event of the range against the filter. Documents whose field holds something other than a
plain value there (an array of actors, an array of ids) could match a string equality in ways
the partition does not model; while any such document is stored the partition is not offered
(`part` returns None) and mongomock's matching over the whole index answers, as before.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from operator import itemgetter
from typing import Any

# (date, rank, store key). The rank is the document's position in the store's insertion order
# (mongomock answers in that order, and breaks sort ties by it); it makes entries orderable
# whatever the type of the store keys.
Entry = tuple[datetime, int, Hashable]
Ranked = tuple[int, Any]  # (rank, stored document)

_date = itemgetter(0)


class TimeIndex:
    """The documents of one mongomock collection store, by the date in `field`."""

    def __init__(
        self, field: str, counted: str | None = None, partition: tuple[str, str] | None = None
    ) -> None:
        self.field = field
        # (`actor`, `id`): documents are also indexed per string value of `actor.id`.
        self.partition = partition
        self._parts: dict[str, TimeIndex] = {}
        self._part_of: dict[Hashable, str] = {}
        self._odd: dict[Hashable, None] = {}  # keys whose partition field is not plain
        # A top-level field whose distinct values are counted (`type` of events: a `stock.*`
        # filter asks for the types it covers). Documents whose value there is not a string
        # (missing, an array...) are only listed, for mongomock to read.
        self.counted = counted
        self._values: dict[str, int] = {}
        self._value_of: dict[Hashable, str] = {}
        self._uncounted: dict[Hashable, None] = {}
        self._entries: list[Entry] = []  # sorted
        self._pending: list[Entry] = []  # not yet sorted in
        self._live: dict[Hashable, Entry] = {}  # store key -> its current entry
        self._others: dict[Hashable, None] = {}  # store keys of documents without a date
        self._rank: dict[Hashable, int] = {}  # store key -> rank, for every stored document
        self._stale = 0
        self._ranks = itertools.count()
        self.dirty = False  # rebuild from the store before the next read

    def clear(self) -> None:
        self.__init__(self.field, self.counted, self.partition)  # type: ignore[misc]

    def stored(self, key: Hashable, document: Mapping[str, Any], rank: int | None = None) -> None:
        """`document` was stored (inserted, or replaced whole) under `key`, or changed in place.
        A key already stored keeps its rank, as it keeps its place in the store."""
        if rank is None:
            rank = self._rank.get(key)
            if rank is None:
                rank = next(self._ranks)
        self._rank[key] = rank
        self._forget(key)
        if self.partition is not None:
            self._partition(key, document, rank)
        if self.counted is not None:
            counted = document.get(self.counted)
            if type(counted) is str:
                self._value_of[key] = counted
                self._values[counted] = self._values.get(counted, 0) + 1
            else:
                self._uncounted[key] = None
        value = document.get(self.field)
        if type(value) is datetime and value.tzinfo is None:
            # A plain naive (UTC) date, as mongomock stores dates. Anything else (missing,
            # None, an array, another type) is left to mongomock's own matching.
            entry: Entry = (value, rank, key)
            self._live[key] = entry
            self._pending.append(entry)
        else:
            self._others[key] = None

    def _partition(self, key: Hashable, document: Mapping[str, Any], rank: int) -> None:
        assert self.partition is not None
        outer, inner = self.partition
        parent = document.get(outer)
        if parent is None:
            return  # (missing or null: no string equality on the subfield matches it)
        if type(parent) is not dict:
            self._odd[key] = None
            return
        value = parent.get(inner)
        if type(value) is str:
            part = self._parts.get(value)
            if part is None:
                part = self._parts[value] = TimeIndex(self.field)
            part.stored(key, document, rank)
            self._part_of[key] = value
        elif isinstance(value, list | tuple | dict):
            self._odd[key] = None  # (an array may hold the string; a dict is compared whole)

    def part(self, documents: Mapping[Hashable, Any], value: str) -> TimeIndex | None:
        """The index of the documents whose partition field is `value` (an empty one when
        there are none); None when the partition cannot answer for every document."""
        self._sorted(documents)  # (rebuilds a dirty index, partitions included)
        if self.partition is None or self._odd:
            return None
        return self._parts.get(value) or TimeIndex(self.field)

    def _forget(self, key: Hashable) -> None:
        part = self._part_of.pop(key, None)
        if part is not None:
            index = self._parts[part]
            index.removed(key)
            if not index._rank:
                del self._parts[part]
        self._odd.pop(key, None)
        if self._live.pop(key, None) is not None:
            self._stale += 1  # its entry stays in the list until the next sweep
        self._others.pop(key, None)
        counted = self._value_of.pop(key, None)
        if counted is not None:
            left = self._values[counted] - 1
            if left:
                self._values[counted] = left
            else:
                del self._values[counted]
        self._uncounted.pop(key, None)

    def counted_values(
        self, documents: Mapping[Hashable, Any]
    ) -> tuple[list[str], list[Any]] | None:
        """The distinct string values of the counted field, and the documents whose value
        there is anything else; None when no field is counted."""
        if self.counted is None:
            return None
        self._sorted(documents)  # (rebuilds a dirty index)
        return list(self._values), [documents[key] for key in self._uncounted]

    def removed(self, key: Hashable) -> None:
        self._forget(key)
        self._rank.pop(key, None)

    def rebuild(self, documents: Mapping[Hashable, Mapping[str, Any]]) -> None:
        self.clear()
        for key, document in documents.items():
            self.stored(key, document)

    def _sorted(self, documents: Mapping[Hashable, Mapping[str, Any]]) -> list[Entry]:
        if self.dirty:
            self.rebuild(documents)
        if self._pending:
            self._entries += self._pending
            self._pending = []
            self._entries.sort()
        if self._stale > len(self._entries) // 2:
            live = self._live
            self._entries = [entry for entry in self._entries if live.get(entry[2]) is entry]
            self._stale = 0
        return self._entries

    def _span(
        self,
        entries: list[Entry],
        low: tuple[datetime, str] | None,
        high: tuple[datetime, str] | None,
    ) -> tuple[int, int]:
        """Positions `[i, j)` of the entries within the bounds (`$gte`/`$gt`, `$lte`/`$lt`)."""
        start, stop = 0, len(entries)
        if low is not None:
            find = bisect.bisect_left if low[1] == "$gte" else bisect.bisect_right
            start = find(entries, low[0], key=_date)
        if high is not None:
            find = bisect.bisect_right if high[1] == "$lte" else bisect.bisect_left
            stop = find(entries, high[0], key=_date)
        return start, max(start, stop)

    def in_range(
        self,
        documents: Mapping[Hashable, Any],
        low: tuple[datetime, str] | None,
        high: tuple[datetime, str] | None,
    ) -> list[Ranked]:
        """The stored documents with a date within the bounds."""
        entries = self._sorted(documents)
        start, stop = self._span(entries, low, high)
        live = self._live
        return [
            (entry[1], documents[entry[2]])
            for entry in entries[start:stop]
            if live.get(entry[2]) is entry
        ]

    def others(self, documents: Mapping[Hashable, Any]) -> list[Ranked]:
        """The stored documents without a date in the field (mongomock matches them itself)."""
        self._sorted(documents)
        return [(self._rank[key], documents[key]) for key in self._others]

    def top(
        self,
        documents: Mapping[Hashable, Any],
        low: tuple[datetime, str] | None,
        high: tuple[datetime, str] | None,
        matches: Callable[[Any], bool],
        *,
        descending: bool,
        count: int,
    ) -> list[Ranked]:
        """The first `count` dated documents within the bounds that `matches` accepts, walking
        in date order (newest first when `descending`), plus every further one sharing the
        last one's date: a superset of the first `count` of any sort led by the date, whatever
        its further keys."""
        entries = self._sorted(documents)
        start, stop = self._span(entries, low, high)
        positions = range(stop - 1, start - 1, -1) if descending else range(start, stop)
        live = self._live
        found: list[Ranked] = []
        boundary: datetime | None = None
        for index in positions:
            entry = entries[index]
            if boundary is not None and entry[0] != boundary:
                break
            if live.get(entry[2]) is not entry:
                continue
            document = documents[entry[2]]
            if not matches(document):
                continue
            found.append((entry[1], document))
            if len(found) >= count and boundary is None:
                boundary = entry[0]
        return found
