"""What every catalog use case shares: database-enforced rules as problem details, and the
small steps of a change (snapshot, apply, 404)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from stockroom.catalog.errors import (
    DuplicateBarcode,
    DuplicateCode,
    DuplicateName,
    DuplicateSku,
    InUse,
)
from stockroom.http.errors import AppError, Conflict, PreconditionFailed, ValidationFailed

T = TypeVar("T")

_UNIQUE_CONFLICTS: dict[str, Callable[[], AppError]] = {
    "uq_products_sku_lower": DuplicateSku,
    "uq_products_barcode": DuplicateBarcode,
    "uq_categories_parent_id_name": lambda: DuplicateName(
        "a category with this name already exists under the same parent"
    ),
    "uq_suppliers_name": lambda: DuplicateName("a supplier with this name already exists"),
    "uq_warehouses_code": lambda: DuplicateCode("a warehouse with this code already exists"),
}


def constraint_of(exc: IntegrityError) -> str:
    """The name of the violated constraint (or the message, to match names against)."""
    cause = getattr(exc.orig, "__cause__", None)
    name = getattr(cause, "constraint_name", None)
    return name if isinstance(name, str) else str(exc.orig)


def integrity_error(exc: IntegrityError, *, deleting: bool = False) -> AppError:
    """The client-facing error for a constraint the database enforced (a race we lost)."""
    return integrity_error_of_constraint(constraint_of(exc), deleting=deleting)


def integrity_error_of_constraint(constraint: str, *, deleting: bool = False) -> AppError:
    """The client-facing error for the named constraint (or an error message naming it)."""
    for name, make in _UNIQUE_CONFLICTS.items():
        if name in constraint:
            return make()
    if "fk_" in constraint:
        if deleting:
            return InUse("the resource is still referenced and cannot be deleted")
        return ValidationFailed("a referenced resource no longer exists")
    if "ck_" in constraint:
        return ValidationFailed("a value breaks a rule of the resource")
    return Conflict()


@asynccontextmanager
async def translated(*, deleting: bool = False) -> AsyncIterator[None]:
    """Database-enforced rules as problem details: constraint names to 409/422, a lost
    optimistic-concurrency race (version changed under us) to 412."""
    try:
        yield
    except IntegrityError as exc:
        raise integrity_error(exc, deleting=deleting) from None
    except StaleDataError:
        raise PreconditionFailed() from None


def snapshot(entity: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """The event-visible fields of an entity, as they are now."""
    return {field: getattr(entity, field) for field in fields}


def apply(entity: Any, values: dict[str, Any]) -> None:
    for field, value in values.items():
        setattr(entity, field, value)


async def or_404(found: Awaitable[T | None], error: type[AppError]) -> T:
    value = await found
    if value is None:
        raise error()
    return value
