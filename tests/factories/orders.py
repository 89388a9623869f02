"""Helpers for order tests: a custom role, levels as the API reports them."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth.models import Role, RolePermission
from stockroom.stock.models import StockLevel


async def make_role(session: AsyncSession, *permissions: str, name: str | None = None) -> str:
    """A custom role holding exactly `permissions`; returns its name."""
    role = Role(name=name or f"role-{uuid.uuid4().hex[:8]}", description="custom", is_system=False)
    session.add(role)
    await session.flush()
    for permission in permissions:
        session.add(RolePermission(role_id=role.id, permission=permission))
    await session.flush()
    return role.name


async def level_of(
    session: AsyncSession, product_id: Any, warehouse_id: Any
) -> dict[str, int] | None:
    """on_hand, reserved and on_order of one level (None: no level row)."""
    row = (
        await session.execute(
            select(StockLevel.on_hand, StockLevel.reserved, StockLevel.on_order)
            .where(
                StockLevel.product_id == uuid.UUID(str(product_id)),
                StockLevel.warehouse_id == uuid.UUID(str(warehouse_id)),
            )
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        return None
    return {"on_hand": row.on_hand, "reserved": row.reserved, "on_order": row.on_order}
