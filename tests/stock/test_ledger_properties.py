"""Property: whatever sequence of movements, transfers, cancels, counts, reversals, sales orders
(confirm, ship, cancel) and purchase orders (submit, receive, cancel) is run, every level equals
the sum of its ledger and is never negative, in-transit equals the open transfers, `reserved`
equals the open reservations (never negative), `on_order` equals the outstanding purchase
quantities, transfers conserve the total, and every success or refusal is the one a simple model
predicts."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.context import Context
from stockroom.db.engine import create_engine, create_sessionmaker
from stockroom.http.errors import AppError
from stockroom.purchasing import service as purchasing
from stockroom.purchasing.schemas import PurchaseOrderCreate, ReceiveRequest
from stockroom.sales import service as sales
from stockroom.sales.schemas import SalesOrderCreate, ShipRequest
from stockroom.stock import service
from stockroom.stock.models import MovementType
from stockroom.stock.schemas import CountCreate, MovementCreate, TransferCreate
from tests.factories.catalog import make_product, make_supplier, make_warehouse

WAREHOUSES = 3
THRESHOLD = 10
USER_TYPES = ["receipt", "return", "sale", "damage", "adjustment"]

warehouse_index = st.integers(0, WAREHOUSES - 1)
operation = st.one_of(
    st.tuples(st.just("move"), st.sampled_from(USER_TYPES), warehouse_index, st.integers(1, 30)),
    st.tuples(st.just("adjust_down"), warehouse_index, st.integers(1, 30)),
    st.tuples(st.just("transfer"), warehouse_index, warehouse_index, st.integers(1, 30)),
    st.tuples(st.just("complete"), st.integers(0, 10)),
    st.tuples(st.just("cancel"), st.integers(0, 10)),
    st.tuples(st.just("count"), warehouse_index, st.integers(0, 60)),
    st.tuples(st.just("approve"), st.integers(0, 10)),
    st.tuples(st.just("reject"), st.integers(0, 10)),
    st.tuples(st.just("reverse"), st.integers(0, 20)),
    st.tuples(st.just("sales_order"), warehouse_index, st.integers(1, 30)),
    st.tuples(st.just("ship"), st.integers(0, 10), st.integers(1, 30)),
    st.tuples(st.just("cancel_sales_order"), st.integers(0, 10)),
    st.tuples(st.just("purchase_order"), warehouse_index, st.integers(1, 30), st.booleans()),
    st.tuples(st.just("receive"), st.integers(0, 10), st.integers(1, 30)),
    st.tuples(st.just("cancel_purchase_order"), st.integers(0, 10)),
)

# Orders only interact when they meet on a level with stock on it: a mix of mostly order steps on
# two warehouses, beside plain receipts, sales and damage, reaches every order path.
two_warehouses = st.integers(0, 1)
order_operation = st.one_of(
    st.tuples(st.just("move"), st.just("receipt"), two_warehouses, st.integers(5, 30)),
    st.tuples(
        st.just("move"), st.sampled_from(["sale", "damage"]), two_warehouses, st.integers(1, 10)
    ),
    st.tuples(st.just("transfer"), two_warehouses, two_warehouses, st.integers(1, 10)),
    st.tuples(st.just("sales_order"), two_warehouses, st.integers(1, 10)),
    st.tuples(st.just("ship"), st.integers(0, 5), st.integers(1, 6)),
    st.tuples(st.just("cancel_sales_order"), st.integers(0, 5)),
    st.tuples(st.just("purchase_order"), two_warehouses, st.integers(1, 20), st.booleans()),
    st.tuples(st.just("receive"), st.integers(0, 5), st.integers(1, 20)),
    st.tuples(st.just("cancel_purchase_order"), st.integers(0, 5)),
)

OPEN_SALES = ("confirmed", "partially_shipped")
OPEN_PURCHASES = ("ordered", "partially_received")


@dataclass
class Order:
    id: str
    warehouse: int
    quantity: int
    status: str
    done: int = 0  # shipped or received

    @property
    def left(self) -> int:
        return self.quantity - self.done


@dataclass
class Model:
    on_hand: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    in_transit: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    external: int = 0  # net units that entered or left the company (not transfers)
    transfers: list[tuple[str, int, int, int]] = field(default_factory=list)  # id, from, q, status
    transfer_open: dict[str, bool] = field(default_factory=dict)
    counts: list[tuple[str, int, int]] = field(default_factory=list)  # id, warehouse, variance
    count_pending: dict[str, bool] = field(default_factory=dict)
    movements: list[tuple[str, int, int]] = field(default_factory=list)  # id, warehouse, signed
    reversed: set[str] = field(default_factory=set)
    reserved: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    on_order: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    sales_orders: list[Order] = field(default_factory=list)
    purchase_orders: list[Order] = field(default_factory=list)

    def available(self, w: int) -> int:
        return self.on_hand[w] - self.reserved[w]


async def run_scenario(
    maker: async_sessionmaker[AsyncSession],
    ops: list[tuple[Any, ...]],
    seen: Counter[str] | None = None,
    *,
    opening: int = 0,
) -> None:
    """Run `ops` on a new product, `opening` units received at every warehouse first."""
    seen = Counter() if seen is None else seen
    ctx = Context.system()
    async with maker() as session, session.begin():
        product = await make_product(session)
        supplier = await make_supplier(session)
        warehouses = [await make_warehouse(session) for _ in range(WAREHOUSES)]
    wid = [w.id for w in warehouses]
    model = Model()

    async def attempt(call: Any) -> Any:
        async with maker() as session:
            try:
                return await call(session)
            except AppError as exc:
                return exc

    opening_ops = [("move", "receipt", w, opening) for w in range(WAREHOUSES) if opening]
    for op in [*opening_ops, *ops]:
        kind = op[0]
        if kind in ("move", "adjust_down"):
            type_, w, q = ("adjustment", op[1], -op[2]) if kind == "adjust_down" else op[1:]
            data = MovementCreate(
                product_id=product.id, warehouse_id=wid[w], type=MovementType(type_), quantity=q
            )
            delta = data.signed_quantity
            result = await attempt(lambda s, d=data: service.post_movement(s, d, ctx))
            # A sale takes only available stock; damage and adjustments may go below reserved.
            floor = model.reserved[w] if type_ == "sale" else 0
            expected_ok = model.on_hand[w] + delta >= floor
            if type_ == "sale" and model.reserved[w] and model.on_hand[w] + delta >= 0:
                seen[
                    "sale held back by a reservation" if not expected_ok else "sale beside one"
                ] += 1
            assert isinstance(result, AppError) != expected_ok, (op, result)
            if expected_ok:
                model.on_hand[w] += delta
                model.external += delta
                model.movements.append((str(result.id), w, delta))
                assert result.on_hand_after == model.on_hand[w]
        elif kind == "transfer":
            _, a, b, q = op
            if a == b:
                continue  # refused by the schema (422); covered by the API tests
            data_t = TransferCreate(
                product_id=product.id, from_warehouse_id=wid[a], to_warehouse_id=wid[b], quantity=q
            )
            result = await attempt(lambda s, d=data_t: service.create_transfer(s, d, ctx))
            expected_ok = model.available(a) >= q
            assert isinstance(result, AppError) != expected_ok, (op, result)
            if expected_ok:
                model.on_hand[a] -= q
                model.in_transit[a] += q
                model.transfers.append((str(result.id), a, b, q))
                model.transfer_open[str(result.id)] = True
        elif kind in ("complete", "cancel"):
            if not model.transfers:
                continue
            tid, a, b, q = model.transfers[op[1] % len(model.transfers)]
            action = service.complete_transfer if kind == "complete" else service.cancel_transfer
            result = await attempt(lambda s, t=uuid.UUID(tid), f=action: f(s, t, ctx))
            expected_ok = model.transfer_open[tid]
            assert isinstance(result, AppError) != expected_ok, (op, result)
            if expected_ok:
                model.transfer_open[tid] = False
                model.in_transit[a] -= q
                model.on_hand[b if kind == "complete" else a] += q
        elif kind == "count":
            _, w, counted = op
            data_c = CountCreate(
                product_id=product.id, warehouse_id=wid[w], counted_quantity=counted
            )
            result = await attempt(
                lambda s, d=data_c: service.record_count(s, d, ctx, variance_threshold=THRESHOLD)
            )
            variance = counted - model.on_hand[w]
            assert result.variance == variance
            if abs(variance) <= THRESHOLD:
                assert result.status == "applied"
                model.on_hand[w] = counted
                model.external += variance
            else:
                assert result.status == "pending_review"
                model.counts.append((str(result.id), w, variance))
                model.count_pending[str(result.id)] = True
        elif kind in ("approve", "reject"):
            if not model.counts:
                continue
            cid, w, variance = model.counts[op[1] % len(model.counts)]
            approve = kind == "approve"
            result = await attempt(
                lambda s, c=uuid.UUID(cid), a=approve: service.review_count(
                    s, c, approve=a, ctx=ctx
                )
            )
            expected_ok = model.count_pending[cid] and (
                not approve or model.on_hand[w] + variance >= 0
            )
            assert isinstance(result, AppError) != expected_ok, (op, result)
            if expected_ok:
                model.count_pending[cid] = False
                if approve:
                    model.on_hand[w] += variance
                    model.external += variance
        elif kind == "reverse":
            if not model.movements:
                continue
            mid, w, signed = model.movements[op[1] % len(model.movements)]
            result = await attempt(
                lambda s, m=uuid.UUID(mid): service.reverse_movement(s, m, None, ctx)
            )
            expected_ok = mid not in model.reversed and model.on_hand[w] - signed >= 0
            assert isinstance(result, AppError) != expected_ok, (op, result)
            if expected_ok:
                model.reversed.add(mid)
                model.on_hand[w] -= signed
                model.external -= signed

        elif kind == "sales_order":
            _, w, q = op
            data_s = SalesOrderCreate.model_validate(
                {
                    "warehouse_id": wid[w],
                    "customer": {"name": "Property"},
                    "lines": [{"product_id": product.id, "quantity": q}],
                }
            )
            async with maker() as session:
                draft = await sales.create_order(session, data_s, ctx)
            order = Order(str(draft.id), w, q, "draft")
            model.sales_orders.append(order)
            result = await attempt(lambda s, o=draft.id: sales.confirm_order(s, o, ctx))
            expected_ok = model.available(w) >= q
            assert isinstance(result, AppError) != expected_ok, (op, result)
            seen[f"confirm {'ok' if expected_ok else 'refused'}"] += 1
            if expected_ok:
                order.status = "confirmed"
                model.reserved[w] += q
            else:
                assert result.code == "insufficient_available", result
        elif kind == "ship":
            if not model.sales_orders:
                continue
            order = model.sales_orders[op[1] % len(model.sales_orders)]
            q = op[2]
            [line] = await _line_ids(maker, "sales_order_lines", "sales_order_id", order.id)
            data_ship = ShipRequest.model_validate({"lines": [{"line_id": line, "quantity": q}]})
            result = await attempt(
                lambda s, o=uuid.UUID(order.id), d=data_ship: sales.ship_order(s, o, d, ctx)
            )
            # The order's own units need only be on hand.
            expected_ok = (
                order.status in OPEN_SALES
                and q <= order.left
                and model.on_hand[order.warehouse] >= q
            )
            assert isinstance(result, AppError) != expected_ok, (op, result)
            seen[f"ship {'ok' if expected_ok else 'refused'}"] += 1
            if expected_ok:
                order.done += q
                order.status = "shipped" if order.left == 0 else "partially_shipped"
                model.on_hand[order.warehouse] -= q
                model.reserved[order.warehouse] -= q
                model.external -= q
        elif kind == "cancel_sales_order":
            if not model.sales_orders:
                continue
            order = model.sales_orders[op[1] % len(model.sales_orders)]
            result = await attempt(lambda s, o=uuid.UUID(order.id): sales.cancel_order(s, o, ctx))
            expected_ok = order.status in ("draft", *OPEN_SALES)
            assert isinstance(result, AppError) != expected_ok, (op, result)
            seen[f"cancel {order.status} sales order"] += 1
            if expected_ok:
                if order.status in OPEN_SALES:
                    model.reserved[order.warehouse] -= order.left
                order.status = "cancelled"
        elif kind == "purchase_order":
            _, w, q, submit = op
            data_p = PurchaseOrderCreate.model_validate(
                {
                    "supplier_id": supplier.id,
                    "warehouse_id": wid[w],
                    "lines": [{"product_id": product.id, "quantity": q}],
                }
            )
            async with maker() as session:
                draft_po = await purchasing.create_order(session, data_p, ctx)
            order = Order(str(draft_po.id), w, q, "draft")
            model.purchase_orders.append(order)
            if submit:
                async with maker() as session:
                    await purchasing.submit_order(session, draft_po.id, ctx)
                order.status = "ordered"
                model.on_order[w] += q
        elif kind == "receive":
            if not model.purchase_orders:
                continue
            order = model.purchase_orders[op[1] % len(model.purchase_orders)]
            q = op[2]
            [line] = await _line_ids(maker, "purchase_order_lines", "purchase_order_id", order.id)
            data_r = ReceiveRequest.model_validate({"lines": [{"line_id": line, "quantity": q}]})
            result = await attempt(
                lambda s, o=uuid.UUID(order.id), d=data_r: purchasing.receive_order(s, o, d, ctx)
            )
            expected_ok = order.status in OPEN_PURCHASES and q <= order.left
            assert isinstance(result, AppError) != expected_ok, (op, result)
            seen[f"receive {'ok' if expected_ok else 'refused'}"] += 1
            if expected_ok:
                order.done += q
                order.status = "received" if order.left == 0 else "partially_received"
                model.on_hand[order.warehouse] += q
                model.on_order[order.warehouse] -= q
                model.external += q
        elif kind == "cancel_purchase_order":
            if not model.purchase_orders:
                continue
            order = model.purchase_orders[op[1] % len(model.purchase_orders)]
            result = await attempt(
                lambda s, o=uuid.UUID(order.id): purchasing.cancel_order(s, o, ctx)
            )
            expected_ok = order.status in ("draft", *OPEN_PURCHASES)
            assert isinstance(result, AppError) != expected_ok, (op, result)
            seen[f"cancel {order.status} purchase order"] += 1
            if expected_ok:
                if order.status in OPEN_PURCHASES:
                    model.on_order[order.warehouse] -= order.left
                order.status = "closed" if order.status == "partially_received" else "cancelled"

    async with maker() as session, session.begin():
        rows = (
            await session.execute(
                text(
                    "SELECT w.id, coalesce(l.on_hand, 0) AS on_hand, "
                    "coalesce(l.in_transit_out, 0) AS in_transit, "
                    "(SELECT coalesce(sum(signed_quantity), 0) FROM stock_movements m "
                    "  WHERE m.product_id = :p AND m.warehouse_id = w.id) AS ledger, "
                    "(SELECT coalesce(sum(quantity), 0) FROM stock_transfers t "
                    "  WHERE t.product_id = :p AND t.from_warehouse_id = w.id "
                    "  AND t.status = 'in_transit') AS open_transfers, "
                    "coalesce(l.reserved, 0) AS reserved, coalesce(l.on_order, 0) AS on_order, "
                    "(SELECT coalesce(sum(sl.quantity - sl.shipped_quantity), 0) "
                    "   FROM sales_order_lines sl JOIN sales_orders so ON so.id = sl.sales_order_id"
                    "  WHERE sl.product_id = :p AND so.warehouse_id = w.id "
                    "    AND so.status IN ('confirmed', 'partially_shipped')) AS unshipped, "
                    "(SELECT coalesce(sum(sl.reserved_quantity), 0) "
                    "   FROM sales_order_lines sl JOIN sales_orders so ON so.id = sl.sales_order_id"
                    "  WHERE sl.product_id = :p AND so.warehouse_id = w.id) AS line_reserved, "
                    "(SELECT coalesce(sum(pl.quantity - pl.received_quantity), 0) "
                    "   FROM purchase_order_lines pl "
                    "   JOIN purchase_orders po ON po.id = pl.purchase_order_id"
                    "  WHERE pl.product_id = :p AND po.warehouse_id = w.id "
                    "    AND po.status IN ('ordered', 'partially_received')) AS outstanding "
                    "FROM warehouses w LEFT JOIN stock_levels l "
                    "  ON l.warehouse_id = w.id AND l.product_id = :p "
                    "WHERE w.id = ANY(:ids)"
                ),
                {"p": product.id, "ids": wid},
            )
        ).all()
    by_id = {row.id: row for row in rows}
    total = 0
    for i, warehouse_id in enumerate(wid):
        row = by_id[warehouse_id]
        assert row.on_hand == row.ledger == model.on_hand[i] >= 0
        assert row.in_transit == row.open_transfers == model.in_transit[i]
        assert row.reserved == row.unshipped == row.line_reserved == model.reserved[i] >= 0
        assert row.on_order == row.outstanding == model.on_order[i] >= 0
        total += row.on_hand + row.in_transit
    assert total == model.external


async def _line_ids(
    maker: async_sessionmaker[AsyncSession], table: str, column: str, order_id: str
) -> list[uuid.UUID]:
    async with maker() as session:
        rows = await session.execute(
            text(f"SELECT id FROM {table} WHERE {column} = :o ORDER BY position"),
            {"o": uuid.UUID(order_id)},
        )
        return [row.id for row in rows]


async def test_random_operation_sequences_keep_the_ledger_invariants(fresh_database: str) -> None:
    def run_all() -> None:
        loop = asyncio.new_event_loop()
        engine = create_engine(fresh_database, pool_size=2, max_overflow=0)
        maker = create_sessionmaker(engine)
        runs: list[int] = []
        seen: Counter[str] = Counter()

        settings_ = settings(
            max_examples=25,
            deadline=None,
            # The same sequences on every run: a CI failure reproduces locally, and no example
            # database left by an earlier run changes how many sequences run.
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )

        @settings_
        @given(ops=st.lists(operation, min_size=1, max_size=25))
        def check(ops: list[tuple[Any, ...]]) -> None:
            loop.run_until_complete(run_scenario(maker, ops, seen))
            runs.append(len(ops))

        @settings_
        @given(ops=st.lists(order_operation, min_size=8, max_size=30))
        def check_orders(ops: list[tuple[Any, ...]]) -> None:
            loop.run_until_complete(run_scenario(maker, ops, seen, opening=20))
            runs.append(len(ops))

        try:
            check()
            check_orders()
            assert len(runs) >= 40, runs  # the property really ran on many sequences
            assert sum(runs) >= 200, runs
            # ... and on the order paths, the reservation's guard included.
            for outcome in (
                "confirm ok",
                "confirm refused",
                "ship ok",
                "ship refused",
                "cancel confirmed sales order",
                "receive ok",
                "receive refused",
                "cancel ordered purchase order",
                "sale held back by a reservation",
            ):
                assert seen[outcome] > 0, (outcome, seen)
        finally:
            loop.run_until_complete(engine.dispose())
            loop.close()

    await asyncio.to_thread(run_all)
