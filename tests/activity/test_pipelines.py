"""The dashboard pipelines use only operators both MongoDB 7+ and mongomock implement."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import mongomock.aggregate as mongomock_aggregate
import mongomock.filtering as mongomock_filtering

from stockroom.activity import repository
from stockroom.activity.schemas import Bucket

# Aggregation stages and operators of MongoDB 7.0 (from the 7.0 aggregation reference), limited
# to the families a dashboard could plausibly use. `$dateTrunc` is here: MongoDB has it (5.0+),
# mongomock does not, which is why the pipelines build buckets from date parts instead.
MONGODB_7_OPERATORS = frozenset(
    {
        # stages
        "$addFields", "$bucket", "$count", "$facet", "$group", "$limit", "$lookup", "$match",
        "$project", "$replaceRoot", "$set", "$skip", "$sort", "$sortByCount", "$unset",
        "$unwind", "$densify", "$fill", "$setWindowFields",
        # query operators
        "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$and", "$or", "$nor",
        "$not", "$exists", "$type", "$regex",
        # accumulators and arithmetic
        "$sum", "$avg", "$min", "$max", "$first", "$last", "$push", "$addToSet", "$add",
        "$subtract", "$multiply", "$divide", "$mod", "$abs", "$floor", "$ceil", "$round",
        # conditionals and conversion
        "$cond", "$ifNull", "$switch", "$toLong", "$toInt", "$toString", "$toDate",
        "$toDecimal", "$convert",
        # dates
        "$year", "$month", "$dayOfMonth", "$hour", "$minute", "$second", "$millisecond",
        "$dayOfWeek", "$dayOfYear", "$isoWeek", "$isoWeekYear", "$week", "$dateFromParts",
        "$dateToParts", "$dateToString", "$dateFromString", "$dateTrunc", "$dateAdd",
        "$dateDiff", "$dateSubtract",
    }
)  # fmt: skip


def mongomock_operators() -> set[str]:
    stages = {name for name, handler in mongomock_aggregate._PIPELINE_HANDLERS.items() if handler}
    expressions = set(
        mongomock_aggregate.group_operators
        + list(mongomock_aggregate.arithmetic_operators)
        + mongomock_aggregate.project_operators
        + mongomock_aggregate.projection_operators
        + mongomock_aggregate.date_operators
        + mongomock_aggregate.conditional_operators
        + mongomock_aggregate.comparison_operators
        + mongomock_aggregate.boolean_operators
        + mongomock_aggregate.type_convertion_operators
        + mongomock_aggregate.control_flow_operators
    )
    query = set(mongomock_filtering.SORTING_OPERATOR_MAP) | {"$eq", "$ne", "$in", "$regex"}
    return stages | expressions | query


def operators_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("$"):
                yield key
            yield from operators_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from operators_in(item)


def all_pipelines() -> list[list[dict[str, Any]]]:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = start + timedelta(days=1)
    return [
        *(repository.activity_pipeline(start, end, bucket) for bucket in Bucket),
        *(repository.stock_flow_pipeline(start, end, bucket, None) for bucket in Bucket),
        repository.stock_flow_pipeline(start, end, Bucket.DAY, uuid.uuid4()),
        repository.top_actors_pipeline(start, end, 10),
        repository.active_actors_pipeline(start),
    ]


def test_the_declared_operators_exist_in_mongodb_7_and_in_mongomock() -> None:
    assert repository.PIPELINE_OPERATORS <= MONGODB_7_OPERATORS
    assert repository.PIPELINE_OPERATORS <= mongomock_operators()


def test_every_pipeline_uses_only_declared_operators() -> None:
    used = {op for pipeline in all_pipelines() for op in operators_in(pipeline)}
    assert used <= repository.PIPELINE_OPERATORS, used - repository.PIPELINE_OPERATORS


def test_date_trunc_is_avoided_because_mongomock_lacks_it() -> None:
    assert "$dateTrunc" not in mongomock_operators()
    assert "$dateTrunc" not in repository.PIPELINE_OPERATORS
