"""page/page_size pagination and `sort` parsing, shared by every list route.

No `from __future__ import annotations` here: FastAPI must evaluate the annotations of the
dependency built inside `sort_param`, which refer to its local variables.
"""

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Self, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from stockroom.http.errors import ValidationFailed

T = TypeVar("T")
MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class PageParams:
    page: int = 1
    page_size: int = 20

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    @property
    def limit(self) -> int:
        return self.page_size


class Page(BaseModel, Generic[T]):
    """One page of a list: `total` items match the filters; pages run from 1 to
    ceil(total / page_size)."""

    items: list[T]
    total: int = Field(ge=0, description="items matching the filters, on every page")
    page: int = Field(ge=1, description="this page's number, as asked (1-based)")
    page_size: int = Field(ge=1, le=MAX_PAGE_SIZE, description="items per page, as asked")

    @classmethod
    def model_parametrized_name(cls, params: tuple[Any, ...]) -> str:
        # `ProductReadPage` in the OpenAPI document, not Pydantic's `Page_ProductRead_`.
        return f"{getattr(params[0], '__name__', 'Item')}Page"

    @classmethod
    def of(cls, items: Iterable[T], total: int, params: PageParams) -> Self:
        """The page `params` asked for: these items of the `total` that match. The one way a
        list route builds its page, so `page` and `page_size` always echo the request."""
        return cls(items=list(items), total=total, page=params.page, page_size=params.page_size)


async def _page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    page_size: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="items per page (1..100)")
    ] = 20,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


Pagination = Annotated[PageParams, Depends(_page_params)]


@dataclass(frozen=True, slots=True)
class Sort:
    field: str
    descending: bool = False


def sort_values(allowed: Sequence[str]) -> list[str]:
    """The values `?sort=` accepts: each field ascending, then each prefixed with `-`."""
    return [*allowed, *(f"-{field}" for field in allowed)]


def parse_sort(value: str | None, allowed: Sequence[str], default: str) -> Sort:
    """`name` or `-name`; an unknown field is a 422 naming the allowed ones."""
    raw = value or default
    descending = raw.startswith("-")
    field = raw[1:] if descending else raw
    if field not in allowed:
        raise ValidationFailed.at(
            ["query", "sort"],
            f"unknown sort field {field!r}; allowed: {', '.join(allowed)} (- for descending)",
            "sort_field",
        )
    return Sort(field=field, descending=descending)


def sort_param(allowed: Sequence[str], default: str) -> Callable[[str], Awaitable[Sort]]:
    """A dependency that parses `?sort=` against the allowed fields of one list route.

    Every list route takes its sort this way, so the OpenAPI document shows `sort` as an enum of
    the allowed fields and their `-` (descending) variants and a client can generate it:

        ProductSort = Annotated[Sort, Depends(sort_param(["name", "created_at"], "name"))]
    """
    description = f"one of {', '.join(allowed)}; prefix with - for descending (default {default})"
    schema = {"enum": sort_values(allowed)}

    async def dependency(
        sort: Annotated[str, Query(description=description, json_schema_extra=schema)] = default,
    ) -> Sort:
        return parse_sort(sort, allowed, default)

    return dependency
