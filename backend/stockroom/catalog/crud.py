"""The use cases categories, suppliers and warehouses share, written once.

Each of the three is a `SimpleCrud`: its model, the fields its events show, its 404 error, the
columns `?q=` searches, and two hooks for what is its own (which values must be unique or
valid; what a delete must not orphan). Reading, creating, changing (guarded by If-Match) and
deleting then go the same way for all three: one transaction each, the event recorded in it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic

from pydantic import BaseModel
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom import events
from stockroom.catalog import repository
from stockroom.catalog.integrity import apply, or_404, snapshot, translated
from stockroom.catalog.repository import Simple
from stockroom.context import Context
from stockroom.db.session import transaction
from stockroom.http.errors import AppError
from stockroom.http.etag import check_if_match
from stockroom.http.pagination import PageParams, Sort

# (session, id of the entity or None when creating, its fields before or None, after): raises
# the problem a create or change is refused with (a duplicate name, a bad reference).
CheckValues = Callable[
    [AsyncSession, uuid.UUID | None, dict[str, Any] | None, dict[str, Any]], Awaitable[None]
]
# (session, id): raises InUse when other rows still depend on the entity.
CheckDelete = Callable[[AsyncSession, uuid.UUID], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SimpleCrud(Generic[Simple]):
    model: type[Simple]
    kind: str  # the entity type of its events, `<kind>.created` and so on
    fields: tuple[str, ...]  # the fields its events snapshot and compare
    not_found: type[AppError]
    search: Sequence[Any]  # the columns `?q=` matches, case-insensitively
    check_values: CheckValues
    check_delete: CheckDelete

    async def list(
        self,
        session: AsyncSession,
        *,
        where: Sequence[ColumnElement[bool]] = (),
        q: str | None,
        sort: Sort,
        page: PageParams,
    ) -> tuple[list[Simple], int]:
        """One page of the rows matching `where` and `q`, and the number of all matches."""
        async with transaction(session):
            return await repository.list_page(
                session,
                self.model,
                where=where,
                search=self.search,
                q=q,
                sort=sort,
                offset=page.offset,
                limit=page.limit,
            )

    async def get(self, session: AsyncSession, entity_id: uuid.UUID) -> Simple:
        """One entity, or its 404."""
        async with transaction(session):
            return await self._get(session, entity_id)

    async def create(self, session: AsyncSession, data: BaseModel, ctx: Context) -> Simple:
        """Create an entity from its create model, checked by `check_values`."""
        async with translated(), transaction(session):
            values = data.model_dump()
            await self.check_values(session, None, None, values)
            entity = self.model(**values)
            session.add(entity)
            await session.flush()
            events.record(
                session,
                f"{self.kind}.created",
                ctx,
                entity=(self.kind, entity.id),
                data=snapshot(entity, self.fields),
            )
        return entity

    async def update(
        self,
        session: AsyncSession,
        entity_id: uuid.UUID,
        data: BaseModel,
        if_match: str | None,
        ctx: Context,
    ) -> Simple:
        """Change the fields sent (a stale If-Match is 412); no event when nothing changed."""
        async with translated(), transaction(session):
            entity = await self._get(session, entity_id)
            check_if_match(if_match, entity.version)
            values = data.model_dump(exclude_unset=True)
            before = snapshot(entity, self.fields)
            after = before | values
            await self.check_values(session, entity.id, before, after)
            changes = events.compute_changes(before, after, self.fields)
            if changes:
                apply(entity, values)
                await session.flush()
                events.record(
                    session,
                    f"{self.kind}.updated",
                    ctx,
                    entity=(self.kind, entity.id),
                    changes=changes,
                )
        return entity

    async def delete(
        self, session: AsyncSession, entity_id: uuid.UUID, if_match: str | None, ctx: Context
    ) -> None:
        """Delete an entity `check_delete` lets go (else 409)."""
        async with translated(deleting=True), transaction(session):
            entity = await self._get(session, entity_id)
            check_if_match(if_match, entity.version)
            await self.check_delete(session, entity_id)
            data = snapshot(entity, self.fields)
            await session.delete(entity)
            # A row the check missed but a foreign key still keeps (a warehouse with stock
            # history) surfaces as 409 through `translated`.
            await session.flush()
            events.record(
                session, f"{self.kind}.deleted", ctx, entity=(self.kind, entity_id), data=data
            )

    async def _get(self, session: AsyncSession, entity_id: uuid.UUID) -> Simple:
        return await or_404(session.get(self.model, entity_id), self.not_found)
