"""Property: whatever sequence of movements, transfers, cancels, counts and reversals is run,
every level equals the sum of its ledger and is never negative, in-transit equals the open
transfers, transfers conserve the total, and every success or refusal is the one a simple model
predicts."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stockroom.context import Context
from stockroom.db.engine import create_engine, create_sessionmaker
from stockroom.http.errors import AppError
from stockroom.stock import service
from stockroom.stock.models import MovementType
from stockroom.stock.schemas import CountCreate, MovementCreate, TransferCreate
from tests.factories.catalog import make_product, make_warehouse

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
)


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


async def run_scenario(maker: async_sessionmaker[AsyncSession], ops: list[tuple[Any, ...]]) -> None:
    ctx = Context.system()
    async with maker() as session, session.begin():
        product = await make_product(session)
        warehouses = [await make_warehouse(session) for _ in range(WAREHOUSES)]
    wid = [w.id for w in warehouses]
    model = Model()

    async def attempt(call: Any) -> Any:
        async with maker() as session:
            try:
                return await call(session)
            except AppError as exc:
                return exc

    for op in ops:
        kind = op[0]
        if kind in ("move", "adjust_down"):
            type_, w, q = ("adjustment", op[1], -op[2]) if kind == "adjust_down" else op[1:]
            data = MovementCreate(
                product_id=product.id, warehouse_id=wid[w], type=MovementType(type_), quantity=q
            )
            delta = data.signed_quantity
            result = await attempt(lambda s, d=data: service.post_movement(s, d, ctx))
            expected_ok = model.on_hand[w] + delta >= 0
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
            expected_ok = model.on_hand[a] >= q
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
                    "  AND t.status = 'in_transit') AS open_transfers "
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
        total += row.on_hand + row.in_transit
    assert total == model.external


async def test_random_operation_sequences_keep_the_ledger_invariants(fresh_database: str) -> None:
    def run_all() -> None:
        loop = asyncio.new_event_loop()
        engine = create_engine(fresh_database, pool_size=2, max_overflow=0)
        maker = create_sessionmaker(engine)
        runs: list[int] = []

        @settings(
            max_examples=25,
            deadline=None,
            # The same sequences on every run: a CI failure reproduces locally, and no example
            # database left by an earlier run changes how many sequences run.
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(ops=st.lists(operation, min_size=1, max_size=25))
        def check(ops: list[tuple[Any, ...]]) -> None:
            loop.run_until_complete(run_scenario(maker, ops))
            runs.append(len(ops))

        try:
            check()
            assert len(runs) >= 20, runs  # the property really ran on many sequences
            assert sum(runs) >= 100, runs
        finally:
            loop.run_until_complete(engine.dispose())
            loop.close()

    await asyncio.to_thread(run_all)
