"""Cost redaction: the one rule that takes costs out of what a caller without `costs:read` sees
(responses, replays, exports, activity events).

Product responses get the same effect by their model (`ProductRead` has no cost fields), so that
the OpenAPI document shows both shapes; their keys are the ones named here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COST_KEYS = frozenset({"cost_price", "margin", "unit_cost", "cost", "total_cost"})


def without_costs(value: Any) -> Any:
    """`value` (JSON-like: mappings, lists, scalars) with every cost key taken out, at any depth."""
    if isinstance(value, Mapping):
        return {k: without_costs(v) for k, v in value.items() if k not in COST_KEYS}
    if isinstance(value, list):
        return [without_costs(v) for v in value]
    return value
