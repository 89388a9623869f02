"""sales_order_confirm(), sales_order_ship(): a sales order action in one call

Revision ID: 0013
Revises: 0012

Confirming or shipping a sales order used to be a dozen statements from Python (the order's lock,
its lines, the products and warehouse, the posting, the lines' and order's updates, the event,
the key's claim and stored response) and most of the request's CPU. Each action is now one SQL
function, its own transaction when called alone (the fast path) or part of the caller's
(`single_statement`), used by the route and its fast path alike (`stockroom.sales.actions`):

1. The `Idempotency-Key` claim (`order_action_claim`): the key's advisory lock, then its live
   row in a snapshot taken after the lock, as `stock_post_keyed` (migration 0014) does: another
   request hash is `idempotency_key_reused`, the same one `replay` with the stored response.
2. The order, locked; `sales_order_not_found`; the state machine (`invalid_transition`, with
   the order's status).
3. Confirm: the warehouse and products (404 before 409, the warehouse first, then the lines in
   order); every line reserved by ONE call of `stock_post` (keep_reserved: available stock
   only), refused as `insufficient_available` with `detail` the shortages (every line short now,
   and the refused one). Ship: the first unknown line id (`unknown_line`, `line` its index in
   the request), every line beyond its unshipped quantity (`over_shipment`, `detail` them all),
   then one `sale` per line by ONE call of `stock_post` consuming the reservation; its refusals
   come back as its reasons with the line's index.
4. The lines and the order updated (version + 1, the times are the context's `created_at`), the
   order's event inserted into the outbox exactly as `events.record` builds it (the caller
   chooses its id and time, after the movements' stamps, as the recorder's clock would), the
   response body built (`sales_order_json`: `SalesOrderRead`'s JSON byte for byte as the API
   writes it, compact, in field order) and stored with the key, and returned with the version.

Nothing is written before the last refusal point, so a refusal writes nothing (and, its own
statement, commits nothing); the key's lock, the movements, the order and the stored response
commit together. `detail` of a refusal is JSON (json, not jsonb: its key order is kept).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# `SalesOrderRead` as Starlette's JSONResponse writes pydantic's `model_dump(mode="json")`:
# json.dumps(separators=(",", ":"), ensure_ascii=False), the model's field order, money with two
# places, datetimes as `stock_json_time`. `to_json` escapes strings as json.dumps does.
ORDER_JSON = r"""
CREATE FUNCTION sales_order_json(p_order uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || to_json(o.id)::text
        || ',"number":' || to_json(o.number)::text
        || ',"status":' || to_json(o.status)::text
        || ',"warehouse_id":' || to_json(o.warehouse_id)::text
        || ',"customer":{"name":' || to_json(o.customer_name)::text
        || ',"email":' || coalesce(to_json(o.customer_email)::text, 'null') || '}'
        || ',"reference":' || coalesce(to_json(o.reference)::text, 'null')
        || ',"note":' || coalesce(to_json(o.note)::text, 'null')
        || ',"lines":[' || coalesce(l.lines, '') || ']'
        || ',"total_price":"' || round(coalesce(l.total, 0), 2)::text || '"'
        || ',"created_by":' || coalesce(to_json(o.created_by)::text, 'null')
        || ',"created_at":"' || stock_json_time(o.created_at) || '"'
        || ',"updated_at":"' || stock_json_time(o.updated_at) || '"'
        || ',"confirmed_at":' || coalesce('"' || stock_json_time(o.confirmed_at) || '"', 'null')
        || ',"closed_at":' || coalesce('"' || stock_json_time(o.closed_at) || '"', 'null')
        || ',"version":' || o.version::text
        || '}'
      FROM sales_orders o,
           LATERAL (SELECT string_agg(
                               '{"id":' || to_json(x.id)::text
                               || ',"product_id":' || to_json(x.product_id)::text
                               || ',"quantity":' || x.quantity::text
                               || ',"reserved_quantity":' || x.reserved_quantity::text
                               || ',"shipped_quantity":' || x.shipped_quantity::text
                               || ',"unit_price":"' || round(x.unit_price, 2)::text || '"}',
                               ',' ORDER BY x.position) AS lines,
                           sum(x.quantity * x.unit_price) AS total
                      FROM sales_order_lines x
                     WHERE x.sales_order_id = o.id) AS l
     WHERE o.id = p_order
$$
"""

# The order's activity event, as `events.record(...)` writes it for the sales service: changes
# `{status: {old, new}}`, data the order and its lines after the change, plus `p_extra`.
ORDER_EVENT = r"""
CREATE FUNCTION sales_order_record(p_order uuid, p_type text, p_old text, p_extra jsonb,
                                   p_ctx jsonb) RETURNS void
LANGUAGE sql VOLATILE AS $$
    INSERT INTO outbox_events (id, type, occurred_at, payload, attempts, next_attempt_at)
    SELECT (p_ctx ->> 'event_id')::uuid, p_type, (p_ctx ->> 'occurred_at')::timestamptz,
           jsonb_build_object(
               'id', p_ctx ->> 'event_id', 'type', p_type,
               'occurred_at', p_ctx ->> 'occurred_at',
               'actor', p_ctx -> 'actor',
               'entity', jsonb_build_object('type', 'sales_order', 'id', o.id),
               'request', p_ctx -> 'request',
               'changes', jsonb_build_object(
                   'status', jsonb_build_object('old', p_old, 'new', o.status)),
               'data', jsonb_build_object(
                   'sales_order_id', o.id, 'number', o.number, 'status', o.status,
                   'warehouse_id', o.warehouse_id,
                   'lines', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                    'line_id', x.id, 'product_id', x.product_id,
                                    'quantity', x.quantity,
                                    'reserved_quantity', x.reserved_quantity,
                                    'shipped_quantity', x.shipped_quantity,
                                    'unit_price', x.unit_price::text) ORDER BY x.position),
                                    '[]'::jsonb)
                               FROM sales_order_lines x WHERE x.sales_order_id = o.id))
                   || coalesce(p_extra, '{}'::jsonb)),
           0, now()
      FROM sales_orders o
     WHERE o.id = p_order
$$
"""

# 1. of the module docstring; `p_key` NULL: no key, nothing to claim.
CLAIM = r"""
CREATE FUNCTION order_action_claim(p_key jsonb, p_now timestamptz)
RETURNS TABLE (reason text, status integer, body text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_stored record;
BEGIN
    IF p_key IS NULL THEN
        RETURN QUERY SELECT NULL::text, NULL::integer, NULL::text;
        RETURN;
    END IF;
    IF NOT pg_try_advisory_xact_lock((p_key ->> 'lock_id')::bigint) THEN
        RETURN QUERY SELECT 'idempotency_request_in_progress'::text, NULL::integer, NULL::text;
        RETURN;
    END IF;
    -- A statement of its own: its snapshot sees a holder that committed before the lock.
    SELECT k.request_hash, k.response_status, k.response_body INTO v_stored
      FROM idempotency_keys k
     WHERE k.user_id = (p_key ->> 'user_id')::uuid AND k.route = p_key ->> 'route'
       AND k.key = p_key ->> 'key'
       AND k.created_at > p_now
                          - make_interval(secs => (p_key ->> 'ttl_seconds')::double precision);
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::text, NULL::integer, NULL::text;
    ELSIF v_stored.request_hash <> p_key ->> 'request_hash' THEN
        RETURN QUERY SELECT 'idempotency_key_reused'::text, NULL::integer, NULL::text;
    ELSE
        RETURN QUERY SELECT 'replay'::text, v_stored.response_status,
            v_stored.response_body::text;
    END IF;
END
$$
"""

# The fresh response stored with the key (an expired row of the same key replaced), and one
# bounded prune of expired keys when the caller drew one (`idempotency.claim_argument`).
STORE = r"""
CREATE FUNCTION order_action_store(p_key jsonb, p_now timestamptz, p_body text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_key IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO idempotency_keys AS k (user_id, route, key, request_hash, response_status,
                                       response_body, created_at)
    VALUES ((p_key ->> 'user_id')::uuid, p_key ->> 'route', p_key ->> 'key',
            p_key ->> 'request_hash', (p_key ->> 'status')::integer, p_body::jsonb, p_now)
    ON CONFLICT (user_id, route, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status,
           response_body = EXCLUDED.response_body, created_at = EXCLUDED.created_at;
    IF (p_key ->> 'prune')::boolean THEN
        DELETE FROM idempotency_keys
         WHERE ctid = ANY(ARRAY(SELECT x.ctid FROM idempotency_keys x
                                 WHERE x.created_at < p_now - make_interval(
                                           secs => (p_key ->> 'ttl_seconds')::double precision)
                                 LIMIT (p_key ->> 'prune_limit')::integer));
    END IF;
END
$$
"""

# Both actions answer one row of this shape.
RESULT = """
    reason text,        -- NULL: done; 'replay'; or why it was refused
    line integer,       -- a refused line's index (stock_post's, or the request's)
    product_id uuid,
    warehouse_id uuid,
    status integer,     -- done or replayed: the response status
    body text,          -- done or replayed: the response body (JSON)
    version integer,    -- done: the order's new version (its ETag)
    detail text,        -- invalid_transition: the status; shortages, over-shipped lines (JSON)
    posted integer      -- a stock_post refusal: how many lines were posted
"""

CONFIRM = rf"""
CREATE FUNCTION sales_order_confirm(p_order uuid, p_ctx jsonb, p_key jsonb)
RETURNS TABLE ({RESULT})
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := (p_ctx ->> 'created_at')::timestamptz;
    v_claim record;
    v_order record;
    v_active boolean;
    v_target record;
    v_lines jsonb;
    v_posted integer;
    v_refusal record;
    v_body text;
BEGIN
    SELECT * INTO v_claim FROM order_action_claim(p_key, v_now) AS c;
    IF v_claim.reason IS NOT NULL THEN
        RETURN QUERY SELECT v_claim.reason, NULL::integer, NULL::uuid, NULL::uuid,
            v_claim.status, v_claim.body, NULL::integer, NULL::text, NULL::integer;
        RETURN;
    END IF;

    SELECT o.id, o.status, o.warehouse_id, o.version INTO v_order
      FROM sales_orders o WHERE o.id = p_order FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'sales_order_not_found'::text, NULL::integer, NULL::uuid, NULL::uuid,
            NULL::integer, NULL::text, NULL::integer, NULL::text, NULL::integer;
        RETURN;
    END IF;
    IF v_order.status <> 'draft' THEN
        RETURN QUERY SELECT 'invalid_transition'::text, NULL::integer, NULL::uuid, NULL::uuid,
            NULL::integer, NULL::text, NULL::integer, v_order.status::text, NULL::integer;
        RETURN;
    END IF;

    -- The targets, as `reservations.checked_order_targets` checks them.
    SELECT w.is_active INTO v_active FROM warehouses w WHERE w.id = v_order.warehouse_id;
    SELECT x.product_id,
           CASE WHEN v_active IS NULL THEN 'warehouse_not_found'
                WHEN p.id IS NULL THEN 'product_not_found'
                WHEN NOT v_active THEN 'inactive_warehouse'
                ELSE 'inactive_product' END AS reason
      INTO v_target
      FROM sales_order_lines x
      LEFT JOIN products p ON p.id = x.product_id
     WHERE x.sales_order_id = p_order
       AND (v_active IS NULL OR NOT v_active OR p.id IS NULL OR NOT p.is_active)
     ORDER BY v_active IS NULL DESC, p.id IS NULL DESC, NOT v_active DESC, x.position
     LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT v_target.reason, NULL::integer, v_target.product_id,
            v_order.warehouse_id, NULL::integer, NULL::text, NULL::integer, NULL::text,
            NULL::integer;
        RETURN;
    END IF;

    -- Every line reserved, or none: one posting of movement-less lines.
    SELECT jsonb_agg(jsonb_build_object(
               'line', x.n, 'product_id', x.product_id, 'warehouse_id', v_order.warehouse_id,
               'type', 'sale', 'quantity', 0, 'signed_quantity', 0, 'in_transit_delta', 0,
               'reserved_delta', x.quantity, 'on_order_delta', 0, 'default_cost', false,
               'default_price', false, 'sales_order_id', p_order,
               'require_active_product', true, 'require_active_warehouse', true,
               'keep_reserved', true) ORDER BY x.n),
           count(*)
      INTO v_lines, v_posted
      FROM (SELECT y.*, (row_number() OVER (ORDER BY y.position) - 1)::integer AS n
              FROM sales_order_lines y WHERE y.sales_order_id = p_order) AS x;
    IF v_lines IS NOT NULL THEN
        SELECT p.reason, p.line, p.product_id, p.warehouse_id INTO v_refusal
          FROM stock_post(v_lines, p_ctx) AS p ORDER BY p.line LIMIT 1;
        IF FOUND AND v_refusal.reason = 'insufficient_available' THEN
            RETURN QUERY SELECT 'insufficient_available'::text, NULL::integer, NULL::uuid,
                NULL::uuid, NULL::integer, NULL::text, NULL::integer,
                (SELECT json_agg(json_build_object(
                            'line_id', x.id::text, 'product_id', x.product_id::text,
                            'requested', x.quantity,
                            'available', coalesce(s.on_hand - s.reserved, 0))
                        ORDER BY x.position)::text
                   FROM sales_order_lines x
                   LEFT JOIN stock_levels s
                     ON s.product_id = x.product_id AND s.warehouse_id = v_order.warehouse_id
                  WHERE x.sales_order_id = p_order
                    AND (coalesce(s.on_hand - s.reserved, 0) < x.quantity
                         OR x.product_id = v_refusal.product_id)),
                NULL::integer;
            RETURN;
        ELSIF FOUND AND v_refusal.reason IS NOT NULL THEN
            RETURN QUERY SELECT v_refusal.reason, v_refusal.line, v_refusal.product_id,
                v_refusal.warehouse_id, NULL::integer, NULL::text, NULL::integer, NULL::text,
                v_posted;
            RETURN;
        END IF;
    END IF;

    UPDATE sales_order_lines x SET reserved_quantity = x.quantity
     WHERE x.sales_order_id = p_order;
    UPDATE sales_orders o
       SET status = 'confirmed', confirmed_at = v_now, updated_at = v_now,
           version = o.version + 1
     WHERE o.id = p_order;
    PERFORM sales_order_record(p_order, 'sales_order.confirmed', 'draft', NULL, p_ctx);
    v_body := sales_order_json(p_order);
    PERFORM order_action_store(p_key, v_now, v_body);
    RETURN QUERY SELECT NULL::text, NULL::integer, NULL::uuid, NULL::uuid, 200, v_body,
        v_order.version + 1, NULL::text, NULL::integer;
END
$$
"""

# `p_ship`: {{"reference": text or null, "lines": [{{"line": index in the request, "line_id",
# "quantity", "id" (the movement's), "event_id", "occurred_at", "low_event_id",
# "low_occurred_at"}}]}}: the ids and stamps chosen by the caller as for `stock_post`.
SHIP = rf"""
CREATE FUNCTION sales_order_ship(p_order uuid, p_ship jsonb, p_ctx jsonb, p_key jsonb)
RETURNS TABLE ({RESULT})
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := (p_ctx ->> 'created_at')::timestamptz;
    v_claim record;
    v_order record;
    v_index integer;
    v_over json;
    v_lines jsonb;
    v_posted integer;
    v_refusal record;
    v_complete boolean;
    v_shipped jsonb;
    v_body text;
BEGIN
    SELECT * INTO v_claim FROM order_action_claim(p_key, v_now) AS c;
    IF v_claim.reason IS NOT NULL THEN
        RETURN QUERY SELECT v_claim.reason, NULL::integer, NULL::uuid, NULL::uuid,
            v_claim.status, v_claim.body, NULL::integer, NULL::text, NULL::integer;
        RETURN;
    END IF;

    SELECT o.id, o.status, o.number, o.warehouse_id, o.version INTO v_order
      FROM sales_orders o WHERE o.id = p_order FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'sales_order_not_found'::text, NULL::integer, NULL::uuid, NULL::uuid,
            NULL::integer, NULL::text, NULL::integer, NULL::text, NULL::integer;
        RETURN;
    END IF;
    IF v_order.status NOT IN ('confirmed', 'partially_shipped') THEN
        RETURN QUERY SELECT 'invalid_transition'::text, NULL::integer, NULL::uuid, NULL::uuid,
            NULL::integer, NULL::text, NULL::integer, v_order.status::text, NULL::integer;
        RETURN;
    END IF;

    SELECT r.line INTO v_index
      FROM jsonb_to_recordset(p_ship -> 'lines') AS r(line integer, line_id uuid)
     WHERE NOT EXISTS (SELECT 1 FROM sales_order_lines x
                        WHERE x.id = r.line_id AND x.sales_order_id = p_order)
     ORDER BY r.line
     LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT 'unknown_line'::text, v_index, NULL::uuid, NULL::uuid,
            NULL::integer, NULL::text, NULL::integer, NULL::text, NULL::integer;
        RETURN;
    END IF;
    SELECT json_agg(json_build_object(
               'line_id', x.id::text, 'unshipped', x.quantity - x.shipped_quantity,
               'requested', r.quantity) ORDER BY r.line)
      INTO v_over
      FROM jsonb_to_recordset(p_ship -> 'lines') AS r(line integer, line_id uuid, quantity integer)
      JOIN sales_order_lines x ON x.id = r.line_id
     WHERE r.quantity > x.quantity - x.shipped_quantity;
    IF v_over IS NOT NULL THEN
        RETURN QUERY SELECT 'over_shipment'::text, NULL::integer, NULL::uuid, NULL::uuid,
            NULL::integer, NULL::text, NULL::integer, v_over::text, NULL::integer;
        RETURN;
    END IF;

    -- One `sale` per line at its price, consuming the reservation: one posting.
    SELECT jsonb_agg(jsonb_build_object(
               'line', r.line, 'id', r.id, 'product_id', x.product_id,
               'warehouse_id', v_order.warehouse_id, 'type', 'sale', 'quantity', r.quantity,
               'signed_quantity', -r.quantity, 'in_transit_delta', 0,
               'reserved_delta', -r.quantity, 'on_order_delta', 0, 'unit_price', x.unit_price,
               'default_cost', false, 'default_price', false,
               'reference', coalesce(nullif(p_ship ->> 'reference', ''), v_order.number),
               'sales_order_id', p_order, 'require_active_product', false,
               'require_active_warehouse', true, 'keep_reserved', false,
               'event_id', r.event_id, 'occurred_at', r.occurred_at,
               'low_event_id', r.low_event_id, 'low_occurred_at', r.low_occurred_at)
               ORDER BY r.line),
           jsonb_agg(jsonb_build_object(
               'line_id', r.line_id, 'product_id', x.product_id, 'quantity', r.quantity,
               'movement_id', r.id) ORDER BY r.line),
           count(*)
      INTO v_lines, v_shipped, v_posted
      FROM jsonb_to_recordset(p_ship -> 'lines')
           AS r(line integer, line_id uuid, quantity integer, id uuid, event_id uuid,
                occurred_at text, low_event_id uuid, low_occurred_at text)
      JOIN sales_order_lines x ON x.id = r.line_id;
    SELECT p.reason, p.line, p.product_id, p.warehouse_id INTO v_refusal
      FROM stock_post(v_lines, p_ctx) AS p ORDER BY p.line LIMIT 1;
    IF FOUND AND v_refusal.reason IS NOT NULL THEN
        RETURN QUERY SELECT v_refusal.reason, v_refusal.line, v_refusal.product_id,
            v_refusal.warehouse_id, NULL::integer, NULL::text, NULL::integer, NULL::text,
            v_posted;
        RETURN;
    END IF;

    UPDATE sales_order_lines x
       SET shipped_quantity = x.shipped_quantity + r.quantity,
           reserved_quantity = x.reserved_quantity - r.quantity
      FROM jsonb_to_recordset(p_ship -> 'lines') AS r(line_id uuid, quantity integer)
     WHERE x.id = r.line_id AND x.sales_order_id = p_order;
    v_complete := NOT EXISTS (SELECT 1 FROM sales_order_lines x
                               WHERE x.sales_order_id = p_order
                                 AND x.shipped_quantity < x.quantity);
    UPDATE sales_orders o
       SET status = CASE WHEN v_complete THEN 'shipped' ELSE 'partially_shipped' END,
           updated_at = v_now,
           closed_at = CASE WHEN v_complete THEN v_now ELSE o.closed_at END,
           version = o.version + 1
     WHERE o.id = p_order;
    PERFORM sales_order_record(
        p_order, 'sales_order.shipped', v_order.status,
        jsonb_build_object('shipped', v_shipped, 'reference', p_ship -> 'reference'), p_ctx);
    v_body := sales_order_json(p_order);
    PERFORM order_action_store(p_key, v_now, v_body);
    RETURN QUERY SELECT NULL::text, NULL::integer, NULL::uuid, NULL::uuid, 200, v_body,
        v_order.version + 1, NULL::text, NULL::integer;
END
$$
"""


def upgrade() -> None:
    for statement in (ORDER_JSON, ORDER_EVENT, CLAIM, STORE, CONFIRM, SHIP):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS sales_order_ship(uuid, jsonb, jsonb, jsonb)")
    op.execute("DROP FUNCTION IF EXISTS sales_order_confirm(uuid, jsonb, jsonb)")
    op.execute("DROP FUNCTION IF EXISTS order_action_store(jsonb, timestamptz, text)")
    op.execute("DROP FUNCTION IF EXISTS order_action_claim(jsonb, timestamptz)")
    op.execute("DROP FUNCTION IF EXISTS sales_order_record(uuid, text, text, jsonb, jsonb)")
    op.execute("DROP FUNCTION IF EXISTS sales_order_json(uuid)")
