"""stock_post_keyed(): a posting made idempotent by its key, in one call

Revision ID: 0014
Revises: 0009

`POST /stock-movements` with an `Idempotency-Key` used to spend five statements beside the
caller's principal (BEGIN, the key's advisory lock, its lookup, the posting, the stored response,
COMMIT). This function does all of it in one statement, which is its own transaction:

1. `pg_try_advisory_xact_lock` on the key's hash: held by a request still running, the answer
   is `idempotency_request_in_progress` (409).
2. The key's live row, read by a statement of its own after the lock (a VOLATILE plpgsql
   function takes a new snapshot per statement at READ COMMITTED): it sees the row of a holder
   that has committed. Another request hash is `idempotency_key_reused` (422); the same one
   returns the stored status and body (`replay`).
3. `stock_post(lines, ctx)`: a refusal comes back as its reason, nothing written (the API then
   stores the refusal's problem body in a follow-up, as for every keyed route).
4. The response body, built here from the movement (exactly `MovementRead`'s JSON:
   `tests/stock/test_keyed_posting.py` compares the two), stored with the key (an expired row of
   the same key is replaced), a bounded prune of expired keys when the caller asks for one, and
   the body returned: the first response and every replay are the same stored JSON.

The key's lock, the movement and the stored row commit together or not at all. One line only
(the route's posting); more lines is an error.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A timestamptz as pydantic writes a UTC datetime: seconds, microseconds only when not zero, Z.
JSON_TIME = r"""
CREATE FUNCTION stock_json_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN date_part('microseconds', t)::bigint % 1000000 <> 0
                THEN to_char(t AT TIME ZONE 'UTC', '.US') ELSE '' END
        || 'Z'
$$
"""

FUNCTION = r"""
CREATE FUNCTION stock_post_keyed(p_lines jsonb, p_ctx jsonb, p_key jsonb)
RETURNS TABLE (
    reason text,            -- NULL: posted; 'replay'; or why it was refused
    line integer,
    id uuid,
    product_id uuid,
    warehouse_id uuid,
    status integer,         -- posted or replayed: the response status
    body text               -- posted or replayed: the response body (JSON)
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := (p_ctx ->> 'created_at')::timestamptz;
    v_user uuid := (p_key ->> 'user_id')::uuid;
    v_route text := p_key ->> 'route';
    v_key text := p_key ->> 'key';
    v_hash text := p_key ->> 'request_hash';
    v_ttl interval := make_interval(secs => (p_key ->> 'ttl_seconds')::double precision);
    v_status integer := (p_key ->> 'status')::integer;
    v_stored record;
    v_posted record;
    v_body jsonb;
BEGIN
    IF jsonb_array_length(p_lines) <> 1 THEN
        RAISE EXCEPTION 'stock_post_keyed posts exactly one line, got %', jsonb_array_length(p_lines);
    END IF;

    -- 1. The claim: released when this statement's transaction ends.
    IF NOT pg_try_advisory_xact_lock((p_key ->> 'lock_id')::bigint) THEN
        RETURN QUERY SELECT 'idempotency_request_in_progress'::text, NULL::integer, NULL::uuid,
            NULL::uuid, NULL::uuid, NULL::integer, NULL::text;
        RETURN;
    END IF;

    -- 2. The stored response, in a snapshot taken after the lock.
    SELECT k.request_hash, k.response_status, k.response_body INTO v_stored
      FROM idempotency_keys k
     WHERE k.user_id = v_user AND k.route = v_route AND k.key = v_key
       AND k.created_at > v_now - v_ttl;
    IF FOUND THEN
        IF v_stored.request_hash <> v_hash THEN
            RETURN QUERY SELECT 'idempotency_key_reused'::text, NULL::integer, NULL::uuid,
                NULL::uuid, NULL::uuid, NULL::integer, NULL::text;
        ELSE
            RETURN QUERY SELECT 'replay'::text, NULL::integer, NULL::uuid, NULL::uuid,
                NULL::uuid, v_stored.response_status, v_stored.response_body::text;
        END IF;
        RETURN;
    END IF;

    -- 3. The posting.
    SELECT * INTO v_posted FROM stock_post(p_lines, p_ctx) AS p ORDER BY p.line LIMIT 1;
    IF v_posted.reason IS NOT NULL THEN
        RETURN QUERY SELECT v_posted.reason, v_posted.line, NULL::uuid, v_posted.product_id,
            v_posted.warehouse_id, NULL::integer, NULL::text;
        RETURN;
    END IF;

    -- 4. The response, stored with the key.
    v_body := jsonb_build_object(
        'id', v_posted.id,
        'product_id', v_posted.product_id,
        'warehouse_id', v_posted.warehouse_id,
        'type', v_posted.type,
        'quantity', v_posted.quantity,
        'signed_quantity', v_posted.signed_quantity,
        'on_hand_after', v_posted.on_hand_after,
        'unit_cost', round(v_posted.unit_cost, 2)::text,
        'unit_price', round(v_posted.unit_price, 2)::text,
        'reference', v_posted.reference,
        'note', v_posted.note,
        'reverses_id', v_posted.reverses_id,
        'transfer_id', v_posted.transfer_id,
        'created_by', v_posted.created_by,
        'request_id', v_posted.request_id,
        'created_at', stock_json_time(v_posted.created_at));
    INSERT INTO idempotency_keys AS k (user_id, route, key, request_hash, response_status,
                                       response_body, created_at)
    VALUES (v_user, v_route, v_key, v_hash, v_status, v_body, v_now)
    ON CONFLICT (user_id, route, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status,
           response_body = EXCLUDED.response_body, created_at = EXCLUDED.created_at;
    IF (p_key ->> 'prune')::boolean THEN
        DELETE FROM idempotency_keys
         WHERE ctid = ANY(ARRAY(SELECT x.ctid FROM idempotency_keys x
                                 WHERE x.created_at < v_now - v_ttl
                                 LIMIT (p_key ->> 'prune_limit')::integer));
    END IF;
    RETURN QUERY SELECT NULL::text, v_posted.line, v_posted.id, v_posted.product_id,
        v_posted.warehouse_id, v_status, v_body::text;
END
$$
"""


def upgrade() -> None:
    op.execute(JSON_TIME)
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS stock_post_keyed(jsonb, jsonb, jsonb)")
    op.execute("DROP FUNCTION IF EXISTS stock_json_time(timestamptz)")
