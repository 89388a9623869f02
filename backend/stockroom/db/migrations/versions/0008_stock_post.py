"""stock_post(): the ledger posting primitive, one call per posting

Revision ID: 0008
Revises: 0011

Every posting (movements, transfers, counts, reversals, and the order receipts and shipments of
later revisions) goes through this one function: it checks the products and warehouses, locks
the levels in one fixed order, applies the guarded changes, inserts the movements and their
outbox events, and returns the movements or the reason it refused (having written nothing).
docs/stock.md describes its contract; stockroom.stock.ledger is its Python side.

It follows 0011 (orders), so it knows reservations and on-order quantities: a line can move
them with its on hand change (a shipment consumes its reservation, a confirmation reserves, a
receipt reduces on order), and a line with `keep_reserved` may not take reserved stock. A later
revision that changes the function replaces it with CREATE OR REPLACE, carrying its own full
copy: a migration describes the schema of its revision, so this text stays frozen.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINE_TYPE = """
CREATE TYPE stock_post_line AS (
    line integer,               -- the line's position in the posting (0-based), for reasons
    id uuid,                    -- the movement's id (chosen by the caller: UUIDv7)
    product_id uuid,
    warehouse_id uuid,
    type text,
    quantity integer,
    signed_quantity integer,    -- 0: no movement, only the level's other quantities change
    in_transit_delta integer,
    reserved_delta integer,
    on_order_delta integer,
    unit_cost numeric(12, 2),
    unit_price numeric(12, 2),
    default_cost boolean,       -- unit_cost NULL: take the product's cost price
    default_price boolean,      -- unit_price NULL: take the product's sale price
    reference text,
    note text,
    reverses_id uuid,
    transfer_id uuid,
    purchase_order_id uuid,
    sales_order_id uuid,
    require_active_product boolean,
    require_active_warehouse boolean,
    keep_reserved boolean,      -- on hand must stay >= reserved (sales, transfers, shipments)
    event_id uuid,              -- stock.movement_posted
    occurred_at text,
    low_event_id uuid,          -- stock.level_low, used only when the line crosses the point
    low_occurred_at text
)
"""

FUNCTION = r"""
CREATE FUNCTION stock_post(p_lines jsonb, p_ctx jsonb)
RETURNS TABLE (
    reason text,
    line integer,
    id uuid,
    product_id uuid,
    warehouse_id uuid,
    type text,
    quantity integer,
    signed_quantity integer,
    on_hand_after integer,
    unit_cost numeric,
    unit_price numeric,
    reference text,
    note text,
    reverses_id uuid,
    transfer_id uuid,
    purchase_order_id uuid,
    sales_order_id uuid,
    created_by uuid,
    request_id text,
    created_at timestamptz
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_lines stock_post_line[];
    v_refusal record;
BEGIN
    SELECT array_agg(l ORDER BY l.line) INTO v_lines
      FROM jsonb_populate_recordset(NULL::stock_post_line, p_lines) AS l;

    -- 1. Products and warehouses: every 404 before any 409, the first line first.
    SELECT l.line, l.product_id, l.warehouse_id,
           CASE WHEN p.id IS NULL THEN 'product_not_found'
                WHEN w.id IS NULL THEN 'warehouse_not_found'
                WHEN l.require_active_product AND NOT p.is_active THEN 'inactive_product'
                ELSE 'inactive_warehouse' END AS reason
      INTO v_refusal
      FROM unnest(v_lines) AS l
      LEFT JOIN products p ON p.id = l.product_id
      LEFT JOIN warehouses w ON w.id = l.warehouse_id
     WHERE p.id IS NULL OR w.id IS NULL
        OR (l.require_active_product AND NOT p.is_active)
        OR (l.require_active_warehouse AND NOT w.is_active)
     ORDER BY (p.id IS NULL OR w.id IS NULL) DESC, l.line
     LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT v_refusal.reason, v_refusal.line, NULL::uuid,
            v_refusal.product_id, v_refusal.warehouse_id, NULL::text, NULL::integer,
            NULL::integer, NULL::integer, NULL::numeric, NULL::numeric, NULL::text, NULL::text,
            NULL::uuid, NULL::uuid, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text,
            NULL::timestamptz;
        RETURN;
    END IF;

    -- 2. Lock the existing levels in one global order (product id, then warehouse id), so two
    -- postings can never wait on each other in a cycle. Missing levels are created in step 4,
    -- in the same order.
    PERFORM 1
       FROM stock_levels s
      WHERE (s.product_id, s.warehouse_id) IN
            (SELECT l.product_id, l.warehouse_id FROM unnest(v_lines) AS l)
      ORDER BY s.product_id, s.warehouse_id
        FOR UPDATE;

    -- 3. The guard, on the locked rows, line by line in line order (a missing level is all
    -- zeros): on hand, in transit, reserved and on order stay >= 0 and on hand within int4;
    -- a `keep_reserved` line leaves on hand >= reserved (available stock only).
    SELECT c.line, c.product_id, c.warehouse_id,
           CASE WHEN c.on_hand_after > 2147483647 THEN 'stock_limit_exceeded'
                WHEN c.on_hand_after < 0 OR c.in_transit_after < 0 THEN 'insufficient_stock'
                WHEN c.reserved_after < 0 THEN 'insufficient_reserved'
                WHEN c.on_order_after < 0 THEN 'insufficient_on_order'
                ELSE 'insufficient_available' END AS reason
      INTO v_refusal
      FROM (SELECT l.line, l.product_id, l.warehouse_id, l.keep_reserved,
                   coalesce(s.on_hand, 0)::bigint + sum(l.signed_quantity) OVER run
                       AS on_hand_after,
                   coalesce(s.in_transit_out, 0)::bigint + sum(l.in_transit_delta) OVER run
                       AS in_transit_after,
                   coalesce(s.reserved, 0)::bigint + sum(l.reserved_delta) OVER run
                       AS reserved_after,
                   coalesce(s.on_order, 0)::bigint + sum(l.on_order_delta) OVER run
                       AS on_order_after
              FROM unnest(v_lines) AS l
              LEFT JOIN stock_levels s
                ON s.product_id = l.product_id AND s.warehouse_id = l.warehouse_id
            WINDOW run AS (PARTITION BY l.product_id, l.warehouse_id ORDER BY l.line)) AS c
     WHERE c.on_hand_after < 0 OR c.in_transit_after < 0 OR c.on_hand_after > 2147483647
        OR c.reserved_after < 0 OR c.on_order_after < 0
        OR (c.keep_reserved AND c.on_hand_after < c.reserved_after)
     ORDER BY c.line
     LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT v_refusal.reason, v_refusal.line, NULL::uuid,
            v_refusal.product_id, v_refusal.warehouse_id, NULL::text, NULL::integer,
            NULL::integer, NULL::integer, NULL::numeric, NULL::numeric, NULL::text, NULL::text,
            NULL::uuid, NULL::uuid, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text,
            NULL::timestamptz;
        RETURN;
    END IF;

    -- 4. Apply every level's net change (an UPDATE of the locked rows, an INSERT of the missing
    -- ones, in lock order); then the movements and their events, each movement's on_hand_after
    -- counted from its level's value before this posting.
    RETURN QUERY
    WITH nets AS (
        SELECT l.product_id, l.warehouse_id,
               sum(l.signed_quantity)::integer AS on_hand,
               sum(l.in_transit_delta)::integer AS transit,
               sum(l.reserved_delta)::integer AS reserved,
               sum(l.on_order_delta)::integer AS on_order
          FROM unnest(v_lines) AS l
         GROUP BY l.product_id, l.warehouse_id
    ), updated AS (
        UPDATE stock_levels s
           SET on_hand = s.on_hand + n.on_hand, in_transit_out = s.in_transit_out + n.transit,
               reserved = s.reserved + n.reserved, on_order = s.on_order + n.on_order,
               updated_at = now()
          FROM nets n
         WHERE s.product_id = n.product_id AND s.warehouse_id = n.warehouse_id
        RETURNING s.product_id, s.warehouse_id, s.on_hand
    ), created AS (
        -- Levels missing in step 3 (their net change is >= 0 there). One created meanwhile by
        -- a concurrent posting is added to instead: its units only make the guard hold better.
        INSERT INTO stock_levels AS s (product_id, warehouse_id, on_hand, in_transit_out,
                                       reserved, on_order, updated_at)
        SELECT n.product_id, n.warehouse_id, n.on_hand, n.transit, n.reserved, n.on_order, now()
          FROM nets n
         WHERE NOT EXISTS (SELECT 1 FROM stock_levels x
                            WHERE x.product_id = n.product_id AND x.warehouse_id = n.warehouse_id)
         ORDER BY n.product_id, n.warehouse_id
        ON CONFLICT (product_id, warehouse_id) DO UPDATE
           SET on_hand = s.on_hand + EXCLUDED.on_hand,
               in_transit_out = s.in_transit_out + EXCLUDED.in_transit_out,
               reserved = s.reserved + EXCLUDED.reserved,
               on_order = s.on_order + EXCLUDED.on_order,
               updated_at = EXCLUDED.updated_at
        RETURNING s.product_id, s.warehouse_id, s.on_hand
    ), applied AS (
        SELECT * FROM updated UNION ALL SELECT * FROM created
    ), moved AS (
        SELECT l.*, p.reorder_point,
               (a.on_hand - n.on_hand + sum(l.signed_quantity) OVER run)::integer
                   AS on_hand_after,
               coalesce(l.unit_cost, CASE WHEN l.default_cost THEN p.cost_price END)
                   AS cost,
               coalesce(l.unit_price, CASE WHEN l.default_price THEN p.sale_price END)
                   AS price
          FROM unnest(v_lines) AS l
          JOIN applied a ON a.product_id = l.product_id AND a.warehouse_id = l.warehouse_id
          JOIN nets n ON n.product_id = l.product_id AND n.warehouse_id = l.warehouse_id
          JOIN products p ON p.id = l.product_id
        WINDOW run AS (PARTITION BY l.product_id, l.warehouse_id ORDER BY l.line)
    ), movements AS (
        INSERT INTO stock_movements (id, product_id, warehouse_id, type, quantity,
            signed_quantity, on_hand_after, unit_cost, unit_price, reference, note, reverses_id,
            transfer_id, purchase_order_id, sales_order_id, created_by, request_id, created_at)
        SELECT m.id, m.product_id, m.warehouse_id, m.type, m.quantity, m.signed_quantity,
               m.on_hand_after, m.cost, m.price, m.reference, m.note, m.reverses_id,
               m.transfer_id, m.purchase_order_id, m.sales_order_id, (p_ctx ->> 'created_by')::uuid, p_ctx ->> 'request_id',
               (p_ctx ->> 'created_at')::timestamptz
          FROM moved m
         WHERE m.signed_quantity <> 0
         ORDER BY m.line
    ), events AS (
        INSERT INTO outbox_events (id, type, occurred_at, payload, attempts, next_attempt_at)
        SELECT e.id, e.type, e.occurred_at::timestamptz,
               jsonb_build_object(
                   'id', e.id, 'type', e.type, 'occurred_at', e.occurred_at,
                   'actor', p_ctx -> 'actor',
                   'entity', jsonb_build_object('type', 'product', 'id', e.product_id),
                   'request', p_ctx -> 'request', 'changes', NULL, 'data', e.data),
               0, now()
          FROM (SELECT m.line, 0 AS k, m.event_id AS id, 'stock.movement_posted' AS type,
                       m.occurred_at, m.product_id,
                       jsonb_build_object(
                           'movement_id', m.id, 'product_id', m.product_id,
                           'warehouse_id', m.warehouse_id, 'type', m.type,
                           'quantity', m.quantity, 'signed_quantity', m.signed_quantity,
                           'on_hand_after', m.on_hand_after, 'unit_price', m.price::text,
                           'reference', m.reference, 'reverses_id', m.reverses_id,
                           'transfer_id', m.transfer_id,
                           'purchase_order_id', m.purchase_order_id,
                           'sales_order_id', m.sales_order_id) AS data
                  FROM moved m
                 WHERE m.signed_quantity <> 0
                UNION ALL
                -- Crossing the reorder point downwards: before > reorder point >= after.
                SELECT m.line, 1, m.low_event_id, 'stock.level_low', m.low_occurred_at,
                       m.product_id,
                       jsonb_build_object(
                           'product_id', m.product_id, 'warehouse_id', m.warehouse_id,
                           'on_hand', m.on_hand_after, 'reorder_point', m.reorder_point,
                           'movement_id', m.id)
                  FROM moved m
                 WHERE m.signed_quantity <> 0
                   AND m.on_hand_after - m.signed_quantity > m.reorder_point
                   AND m.reorder_point >= m.on_hand_after) AS e
         ORDER BY e.line, e.k
    )
    SELECT NULL::text, m.line, m.id, m.product_id, m.warehouse_id, m.type, m.quantity,
           m.signed_quantity, m.on_hand_after, m.cost, m.price, m.reference, m.note,
           m.reverses_id, m.transfer_id, m.purchase_order_id, m.sales_order_id,
           (p_ctx ->> 'created_by')::uuid, p_ctx ->> 'request_id',
           (p_ctx ->> 'created_at')::timestamptz
      FROM moved m
     WHERE m.signed_quantity <> 0
     ORDER BY m.line;
END
$$
"""


def upgrade() -> None:
    op.execute(LINE_TYPE)
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS stock_post(jsonb, jsonb)")
    op.execute("DROP TYPE IF EXISTS stock_post_line")
