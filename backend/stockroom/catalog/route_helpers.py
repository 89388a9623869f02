"""What the catalog routes share: the permission dependencies, the `?q=` parameter and the
problem statuses their OpenAPI entries list."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from stockroom.auth.deps import require
from stockroom.auth.permissions import Perm
from stockroom.context import Principal
from stockroom.types import SafeText

Reader = Annotated[Principal, Depends(require(Perm.CATALOG_READ))]
Writer = Annotated[Principal, Depends(require(Perm.CATALOG_WRITE))]
Search = Annotated[
    SafeText | None,
    Query(min_length=1, max_length=200, description="case-insensitive substring search"),
]
READ_ERRORS = (401, 403, 422)
WRITE_ERRORS = (401, 403, 409, 422)
