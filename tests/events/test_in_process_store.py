"""The in-process store's changes to mongomock give exactly mongomock's answers, only faster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import mongomock
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mongomock import helpers
from mongomock.filtering import filter_applies

from stockroom.events.store import in_process_event_store

BASE = datetime(2026, 3, 1, tzinfo=UTC)

# Millisecond steps around a base time, so bounds and values often coincide exactly.
instants = st.integers(min_value=0, max_value=40).map(lambda ms: BASE + timedelta(milliseconds=ms))
# Bounds as callers send them: aware (in any offset), sometimes with sub-millisecond parts.
bounds = st.builds(
    lambda when, micro, hours: (when + timedelta(microseconds=micro)).astimezone(
        timezone(timedelta(hours=hours))
    ),
    instants,
    st.integers(min_value=0, max_value=999),
    st.integers(min_value=-5, max_value=5),
)
# What `occurred_at` may hold in a stored document: usually a date, sometimes not.
occurred_at_values = st.one_of(
    instants,
    instants,
    instants,
    st.none(),
    st.text(max_size=3),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.lists(instants, max_size=2),
)


@st.composite
def documents(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs = []
    for number in range(draw(st.integers(min_value=0, max_value=25))):
        doc: dict[str, Any] = {"_id": f"{number:04d}", "type": draw(st.sampled_from("ab"))}
        value = draw(occurred_at_values)
        if value is not None:
            doc["occurred_at"] = value
        docs.append(doc)
    return docs


@st.composite
def filters(draw: st.DrawFn) -> dict[str, Any]:
    result: dict[str, Any] = {}
    operators = draw(st.sets(st.sampled_from(["$gte", "$gt", "$lte", "$lt"]), max_size=4))
    if operators:
        result["occurred_at"] = {op: draw(bounds) for op in operators}
    if draw(st.booleans()):
        result["type"] = draw(st.sampled_from("ab"))
    if draw(st.booleans()):
        when = draw(bounds)
        result["$or"] = [
            {"occurred_at": {"$lt": when}},
            {"occurred_at": when, "_id": {"$lt": draw(st.sampled_from(["0005", "0010"]))}},
        ]
    return result


def store_collection() -> Any:
    in_process_event_store()  # applies the store's changes to mongomock
    return mongomock.MongoClient(tz_aware=True)["stockroom"]["activity_events"]


def mongomock_answer(collection: Any, filter: dict[str, Any]) -> list[str]:
    """What unchanged mongomock does: every stored document tested against the whole filter."""
    spec = helpers.patch_datetime_awareness_in_document(filter)
    return sorted(doc["_id"] for doc in collection._store.documents if filter_applies(spec, doc))


@settings(max_examples=300, deadline=None)
@given(docs=documents(), filter=filters())
def test_time_ranges_select_exactly_what_mongomock_selects(
    docs: list[dict[str, Any]], filter: dict[str, Any]
) -> None:
    collection = store_collection()
    if docs:
        collection.insert_many(docs)

    found = sorted(doc["_id"] for doc in collection.find(filter))

    assert found == mongomock_answer(collection, filter)
    assert collection.count_documents(filter) == len(found)


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=30),
    skip=st.integers(min_value=0, max_value=35),
    limit=st.integers(min_value=-35, max_value=35),
)
def test_cursors_yield_the_same_documents_as_a_list_slice(
    count: int, skip: int, limit: int
) -> None:
    collection = store_collection()
    if count:
        collection.insert_many([{"_id": f"{n:04d}", "n": n} for n in range(count)])
    expected = list(range(count))[skip:]
    if limit:
        expected = expected[: abs(limit)]

    cursor = collection.find({}).sort("n", 1).skip(skip).limit(limit)

    assert [doc["n"] for doc in cursor] == expected


def mongomock_sorted_answer(
    collection: Any, filter: dict[str, Any], sort: list[tuple[str, int]], skip: int, limit: int
) -> list[str]:
    """What unchanged mongomock returns for a sorted, skipped and limited find."""
    spec = helpers.patch_datetime_awareness_in_document(filter)
    matched = [doc for doc in collection._store.documents if filter_applies(spec, doc)]
    for key, direction in reversed(sort):
        matched.sort(
            key=lambda doc, key=key: mongomock.filtering.resolve_sort_key(key, doc),
            reverse=direction < 0,
        )
    return [doc["_id"] for doc in matched[skip:][:limit]]


# Writes between reads: the date index must follow inserts, replacements, in-place updates
# (one document, and several) and deletes.
writes = st.lists(
    st.tuples(
        st.sampled_from(["insert", "replace", "set_one", "set_many", "delete_one", "delete_many"]),
        st.integers(min_value=0, max_value=30),
        occurred_at_values,
        st.sampled_from("ab"),
    ),
    max_size=8,
)


def apply_write(collection: Any, write: tuple[str, int, Any, str]) -> None:
    kind, number, value, type_ = write
    key = f"{number:04d}"
    document: dict[str, Any] = {"_id": key, "type": type_}
    if value is not None:
        document["occurred_at"] = value
    if kind == "insert":
        collection.replace_one({"_id": key}, document, upsert=True)
    elif kind == "replace":
        collection.replace_one({"_id": key}, document)
    elif kind == "set_one":
        collection.update_one({"_id": key}, {"$set": {"occurred_at": value}})
    elif kind == "set_many":
        collection.update_many({"type": type_}, {"$set": {"occurred_at": value}})
    elif kind == "delete_one":
        collection.delete_one({"_id": key})
    else:
        collection.delete_many({"type": type_})


@settings(max_examples=300, deadline=None)
@given(
    docs=documents(),
    before=writes,
    filter=filters(),
    direction=st.sampled_from([1, -1]),
    tie_break=st.sampled_from([[], [("_id", 1)], [("_id", -1)], [("type", 1)]]),
    skip=st.integers(min_value=0, max_value=5),
    limit=st.integers(min_value=-30, max_value=30).filter(bool),
    after=writes,
)
def test_sorted_limited_finds_and_ranges_follow_every_write(
    docs: list[dict[str, Any]],
    before: list[tuple[str, int, Any, str]],
    filter: dict[str, Any],
    direction: int,
    tie_break: list[tuple[str, int]],
    skip: int,
    limit: int,
    after: list[tuple[str, int, Any, str]],
) -> None:
    collection = store_collection()
    if docs:
        collection.insert_many(docs)
    sort = [("occurred_at", direction), *tie_break]
    for rounds in (before, after):  # reads in between: the index is built, then must follow
        for write in rounds:
            apply_write(collection, write)

        found = [doc["_id"] for doc in collection.find(filter, sort=sort, skip=skip, limit=limit)]
        ranged = sorted(doc["_id"] for doc in collection.find(filter))

        assert found == mongomock_sorted_answer(collection, filter, sort, skip, abs(limit))
        assert ranged == mongomock_answer(collection, filter)


def test_documents_updated_in_place_are_found_at_their_new_date() -> None:
    collection = store_collection()
    later = BASE + timedelta(days=1)
    collection.insert_many(
        [{"_id": f"{n:04d}", "type": "ab"[n % 2], "occurred_at": BASE} for n in range(6)]
    )
    assert len(list(collection.find({"occurred_at": {"$gte": BASE}}))) == 6  # index built

    collection.update_many({"type": "a"}, {"$set": {"occurred_at": later}})
    collection.update_one({"_id": "0001"}, {"$set": {"occurred_at": later}})

    moved = {"0000", "0002", "0004", "0001"}
    assert {d["_id"] for d in collection.find({"occurred_at": {"$gte": later}})} == moved
    assert {d["_id"] for d in collection.find({"occurred_at": {"$lt": later}})} == {"0003", "0005"}
    newest = collection.find({}, sort=[("occurred_at", -1), ("_id", 1)], limit=2)
    assert [d["_id"] for d in newest] == ["0000", "0001"]


# Stored values of every shape a document may hold, dates (naive and aware) included.
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.binary(max_size=3),
    instants,
    bounds,
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("xyz"), inner, max_size=3)
    ),
    max_leaves=8,
)
projections = st.sampled_from(
    [
        *[None, {}, {"a": 1}, {"a": 1, "_id": 0}, {"b": 1, "a": True}, {"_id": 1, "b": 1}],
        *[{"a.x": 1}, {"a": 0}, {"_id": 0}, {"occurred_at": 1, "_id": 0}],
        *[{"a.x": 1, "b": 1, "_id": 0}, {"a.x": 1, "a.y.z": 1}, {"a.x": 1, "a": 1}],
    ]
)


def exact(value: Any) -> Any:
    """A value with its dicts' key order and its dates' offsets made comparable."""
    if isinstance(value, dict):
        return [(key, exact(item)) for key, item in value.items()]
    if isinstance(value, list):
        return ["list", *map(exact, value)]
    if isinstance(value, datetime):
        return (value, value.utcoffset())
    return (type(value).__name__, value)


@settings(max_examples=200, deadline=None)
@given(
    stored=st.lists(st.tuples(values, values, occurred_at_values), max_size=6),
    projection=projections,
    filter=filters(),
)
def test_finds_return_exactly_mongomocks_copies(
    stored: list[tuple[Any, Any, Any]], projection: dict[str, Any] | None, filter: dict[str, Any]
) -> None:
    collection = store_collection()
    for number, (a, b, occurred_at) in enumerate(stored):
        document = {"_id": f"{number:04d}", "a": a, "type": "ab"[number % 2], "b": b}
        if occurred_at is not None:
            document["occurred_at"] = occurred_at
        collection.insert_one(document)
    spec = helpers.patch_datetime_awareness_in_document(filter)
    matched = [doc for doc in collection._store.documents if filter_applies(spec, doc)]
    try:
        expected = [
            helpers.make_datetime_timezone_aware_in_document(
                collection._copy_only_fields(
                    doc, None if projection is None else dict(projection), dict
                )
            )
            for doc in matched
        ]
    except Exception as error:  # what mongomock cannot project, the store cannot either
        with pytest.raises(type(error)):
            list(collection.find(filter, projection))
        return

    found = list(collection.find(filter, projection))

    assert sorted(map(exact, found), key=repr) == sorted(map(exact, expected), key=repr)
    assert sorted(collection.distinct("type", filter)) == sorted({doc["type"] for doc in matched})
    dates = [doc.get("occurred_at") for doc in matched]
    expected_dates = {
        exact(value)
        for value in helpers.make_datetime_timezone_aware_in_document(dates)
        for value in (value if isinstance(value, list) else [value])
        if value is not None
    }
    assert {exact(value) for value in collection.distinct("occurred_at", filter)} == expected_dates


type_values = st.one_of(
    st.sampled_from(["stock.a", "stock.b", "product.a"]),
    st.lists(st.sampled_from(["stock.a", "product.b"]), max_size=2),
    st.none(),
    st.integers(min_value=0, max_value=2),
)
type_filters = st.sampled_from(
    [None, {}, {"type": "stock.a"}, {"type": {"$regex": "^stock\\."}}, {"type": {"$in": ["x"]}}]
)


@settings(max_examples=200, deadline=None)
@given(
    types=st.lists(type_values, max_size=10),
    changes=st.lists(st.tuples(st.integers(min_value=0, max_value=12), type_values), max_size=5),
    filter=type_filters,
)
def test_distinct_types_follow_every_write(
    types: list[Any], changes: list[tuple[int, Any]], filter: dict[str, Any] | None
) -> None:
    collection = store_collection()

    def stored_as(number: int, value: Any) -> dict[str, Any]:
        document: dict[str, Any] = {"_id": f"{number:04d}", "occurred_at": BASE}
        if value is not None:
            document["type"] = value
        return document

    for number, value in enumerate(types):
        collection.insert_one(stored_as(number, value))
    assert collection.distinct("type", filter) is not None  # the counts are built
    for number, value in changes:
        if number % 3 == 0:
            collection.delete_one({"_id": f"{number:04d}"})
        else:
            collection.replace_one({"_id": f"{number:04d}"}, stored_as(number, value), upsert=True)

    found = collection.distinct("type", filter)

    assert sorted(map(repr, found)) == sorted(
        map(repr, collection.find(filter or {}).distinct("type"))
    )
    assert len(found) == len(set(map(repr, found)))


# What `actor` may hold: usually `{id, email}` with a string id, sometimes anything else a
# document could store there (the actor index must then give mongomock's answer all the same).
actor_values = st.one_of(
    st.builds(lambda id_: {"id": id_, "email": "e"}, st.sampled_from(["u1", "u2", "u3"])),
    st.builds(lambda id_: {"id": id_, "email": "e"}, st.sampled_from(["u1", "u2", "u3"])),
    st.none(),
    st.just({"email": "e"}),
    st.builds(lambda id_: {"id": [id_]}, st.sampled_from(["u1", "u2"])),
    st.builds(lambda id_: [{"id": id_}], st.sampled_from(["u1", "u2"])),
    st.just("u1"),
    st.just({"id": None}),
)
actor_writes = st.lists(
    st.tuples(
        st.sampled_from(["insert", "replace", "set_actor", "delete_one"]),
        st.integers(min_value=0, max_value=25),
        instants,
        actor_values,
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    actors=st.lists(st.tuples(actor_values, instants), max_size=25),
    before=actor_writes,
    actor_id=st.sampled_from(["u1", "u2", "u4"]),
    filter=filters(),
    direction=st.sampled_from([1, -1]),
    skip=st.integers(min_value=0, max_value=3),
    limit=st.integers(min_value=1, max_value=8),
    after=actor_writes,
)
def test_actor_index_selects_exactly_what_mongomock_selects(
    actors: list[tuple[Any, datetime]],
    before: list[tuple[str, int, datetime, Any]],
    actor_id: str,
    filter: dict[str, Any],
    direction: int,
    skip: int,
    limit: int,
    after: list[tuple[str, int, datetime, Any]],
) -> None:
    collection = store_collection()
    for number, (actor, when) in enumerate(actors):
        document: dict[str, Any] = {"_id": f"{number:04d}", "type": "ab"[number % 2]}
        document["occurred_at"] = when
        if actor is not None or number % 3:
            document["actor"] = actor
        collection.insert_one(document)
    query = {**filter, "actor.id": actor_id}
    sort = [("occurred_at", direction), ("_id", direction)]
    for rounds in (before, after):  # reads in between: the index is built, then must follow
        for kind, number, when, actor in rounds:
            key = f"{number:04d}"
            if kind == "insert":
                new = {"_id": key, "type": "a", "occurred_at": when, "actor": actor}
                collection.replace_one({"_id": key}, new, upsert=True)
            elif kind == "replace":
                collection.replace_one({"_id": key}, {"_id": key, "occurred_at": when})
            elif kind == "set_actor":
                collection.update_one({"_id": key}, {"$set": {"actor": actor}})
            else:
                collection.delete_one({"_id": key})

        found = [doc["_id"] for doc in collection.find(query, sort=sort, skip=skip, limit=limit)]
        ranged = sorted(doc["_id"] for doc in collection.find(query))

        assert found == mongomock_sorted_answer(collection, query, sort, skip, limit)
        assert ranged == mongomock_answer(collection, query)
