"""Body parts shared by purchase and sales orders: line limits, the per-product rule, and the
`{line_id, quantity}` of a receipt or a shipment."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict

from stockroom.stock.schemas import Quantity

MAX_LINES = 500


def distinct_products(lines: list[Any]) -> list[Any]:
    """A product at most once per order (its lines are per product)."""
    seen: set[uuid.UUID] = set()
    for line in lines:
        if line.product_id in seen:
            raise ValueError(f"product {line.product_id} appears on more than one line")
        seen.add(line.product_id)
    return lines


def distinct_lines(lines: list[Any]) -> list[Any]:
    """A line at most once per receipt or shipment."""
    seen: set[uuid.UUID] = set()
    for line in lines:
        if line.line_id in seen:
            raise ValueError(f"line {line.line_id} appears more than once")
        seen.add(line.line_id)
    return lines


class LineQuantity(BaseModel):
    """How much of one order line a receipt or shipment moves."""

    model_config = ConfigDict(extra="forbid")

    line_id: uuid.UUID
    quantity: Quantity
