"""The report queries: all aggregation happens in PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.reports.schemas import PurchasesGroupBy, SalesGroupBy

# Sales lines: sales and returns (returns count negative), and reversals of either (which carry
# the reversed movement's unit price), all signed so that units = -signed_quantity.
# Unit cost per product: the weighted average unit_cost of its receipts up to the end of the
# window, reversed receipts excluded; the product's cost price when it has none.
_SALES_SUMMARY = """
WITH lines AS (
    SELECT m.product_id, m.warehouse_id, m.created_at,
           -m.signed_quantity AS units,
           -m.signed_quantity * m.unit_price AS revenue
      FROM stock_movements m
      LEFT JOIN stock_movements o ON o.id = m.reverses_id
     WHERE (m.type IN ('sale', 'return')
            OR (m.reverses_id IS NOT NULL AND o.type IN ('sale', 'return')))
       AND (CAST(:date_from AS timestamptz) IS NULL OR m.created_at >= :date_from)
       AND (CAST(:date_to AS timestamptz) IS NULL OR m.created_at < :date_to)
), receipt_cost AS (
    SELECT r.product_id, sum(r.quantity * r.unit_cost) / sum(r.quantity) AS unit_cost
      FROM stock_movements r
     WHERE r.type = 'receipt' AND r.unit_cost IS NOT NULL
       AND (CAST(:date_to AS timestamptz) IS NULL OR r.created_at < :date_to)
       AND NOT EXISTS (SELECT 1 FROM stock_movements x WHERE x.reverses_id = r.id)
       AND r.product_id IN (SELECT product_id FROM lines)
     GROUP BY r.product_id
), grouped AS (
    SELECT {key} AS key, {label} AS label,
           sum(s.units)::bigint AS units,
           coalesce(sum(s.revenue), 0) AS revenue,
           round(sum(s.units * coalesce(rc.unit_cost, p.cost_price)), 2) AS cost
      FROM lines s
      JOIN products p ON p.id = s.product_id
      LEFT JOIN receipt_cost rc ON rc.product_id = s.product_id
      LEFT JOIN categories c ON c.id = p.category_id
      LEFT JOIN warehouses w ON w.id = s.warehouse_id
     GROUP BY 1, 2
)
SELECT key, label, units, round(revenue, 2) AS revenue, cost, round(revenue, 2) - cost AS margin
  FROM grouped
 ORDER BY {order}
"""

# Both summaries group by the UTC day of each movement the same way (key, label, order).
_BY_DAY = (
    "to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "key",
)

_GROUPS: dict[SalesGroupBy, tuple[str, str, str]] = {
    SalesGroupBy.CATEGORY: (
        "coalesce(c.id::text, 'uncategorized')",
        "coalesce(c.name, 'Uncategorized')",
        "revenue DESC, label, key",
    ),
    SalesGroupBy.PRODUCT: ("p.id::text", "p.name", "revenue DESC, label, key"),
    SalesGroupBy.WAREHOUSE: ("w.id::text", "w.name", "revenue DESC, label, key"),
    SalesGroupBy.DAY: _BY_DAY,
}
_SALES_STATEMENTS = {
    group: text(_SALES_SUMMARY.format(key=key, label=label, order=order))
    for group, (key, label, order) in _GROUPS.items()
}


async def _summary_rows(
    session: AsyncSession,
    statement: TextClause,
    date_from: datetime | None,
    date_to: datetime | None,
) -> list[Any]:
    result = await session.execute(statement, {"date_from": date_from, "date_to": date_to})
    return list(result.all())


async def sales_summary(
    session: AsyncSession,
    group_by: SalesGroupBy,
    date_from: datetime | None,
    date_to: datetime | None,
) -> list[Any]:
    return await _summary_rows(session, _SALES_STATEMENTS[group_by], date_from, date_to)


# Purchases are receipts (of a purchase order or posted directly) and reversals of receipts, which
# carry the reversed receipt's unit cost and count negative. A receipt's supplier is its purchase
# order's; a direct receipt falls back to the product's current supplier.
_PURCHASES_SUMMARY = """
WITH lines AS (
    SELECT m.product_id, m.warehouse_id, m.created_at,
           coalesce(m.purchase_order_id, o.purchase_order_id) AS purchase_order_id,
           m.signed_quantity AS units,
           m.signed_quantity * m.unit_cost AS cost
      FROM stock_movements m
      LEFT JOIN stock_movements o ON o.id = m.reverses_id
     WHERE (m.type = 'receipt' OR (m.reverses_id IS NOT NULL AND o.type = 'receipt'))
       AND (CAST(:date_from AS timestamptz) IS NULL OR m.created_at >= :date_from)
       AND (CAST(:date_to AS timestamptz) IS NULL OR m.created_at < :date_to)
)
SELECT {key} AS key, {label} AS label,
       sum(s.units)::bigint AS units,
       count(DISTINCT s.purchase_order_id) AS purchase_orders,
       round(coalesce(sum(s.cost), 0), 2) AS cost
  FROM lines s
  JOIN products p ON p.id = s.product_id
  LEFT JOIN purchase_orders po ON po.id = s.purchase_order_id
  LEFT JOIN suppliers sup ON sup.id = coalesce(po.supplier_id, p.supplier_id)
  LEFT JOIN warehouses w ON w.id = s.warehouse_id
 GROUP BY 1, 2
 ORDER BY {order}
"""

# Never ordered by cost: the order of the rows would tell a caller without costs:read what the
# absent column hides.
_PURCHASE_GROUPS: dict[PurchasesGroupBy, tuple[str, str, str]] = {
    PurchasesGroupBy.SUPPLIER: (
        "coalesce(sup.id::text, 'none')",
        "coalesce(sup.name, 'No supplier')",
        "units DESC, label, key",
    ),
    PurchasesGroupBy.PRODUCT: ("p.id::text", "p.name", "units DESC, label, key"),
    PurchasesGroupBy.WAREHOUSE: ("w.id::text", "w.name", "units DESC, label, key"),
    PurchasesGroupBy.DAY: _BY_DAY,
}
_PURCHASE_STATEMENTS = {
    group: text(_PURCHASES_SUMMARY.format(key=key, label=label, order=order))
    for group, (key, label, order) in _PURCHASE_GROUPS.items()
}


async def purchases_summary(
    session: AsyncSession,
    group_by: PurchasesGroupBy,
    date_from: datetime | None,
    date_to: datetime | None,
) -> list[Any]:
    return await _summary_rows(session, _PURCHASE_STATEMENTS[group_by], date_from, date_to)


_VALUATION = text(
    """
    SELECT c.id AS category_id, coalesce(c.name, 'Uncategorized') AS category,
           sum(l.on_hand + l.in_transit_out)::bigint AS units,
           sum((l.on_hand + l.in_transit_out) * p.cost_price) AS value
      FROM stock_levels l
      JOIN products p ON p.id = l.product_id
      LEFT JOIN categories c ON c.id = p.category_id
     WHERE (CAST(:warehouse_id AS uuid) IS NULL OR l.warehouse_id = :warehouse_id)
     GROUP BY c.id, c.name
    HAVING sum(l.on_hand + l.in_transit_out) > 0
     ORDER BY category, category_id
    """
)


async def stock_valuation(session: AsyncSession, warehouse_id: uuid.UUID | None) -> list[Any]:
    return list((await session.execute(_VALUATION, {"warehouse_id": warehouse_id})).all())


async def warehouse_exists(session: AsyncSession, warehouse_id: uuid.UUID) -> bool:
    found = await session.scalar(
        text("SELECT 1 FROM warehouses WHERE id = :id"), {"id": warehouse_id}
    )
    return found is not None
