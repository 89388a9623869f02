"""`GET /products/{id}` as a fast path (`stockroom.http.fastpath`): the principal, then the
product with its on hand and stock per warehouse in one precompiled statement, both on a leased
driver connection, serialized once. It declines what the route (`catalog.router.get_product`)
refuses or matches differently: an id that is not a UUID, a bad token, a caller without
catalog:read, a product that does not exist (the route's 404)."""

from __future__ import annotations

import re
import uuid

from starlette.convertors import UUIDConvertor
from starlette.responses import Response

from stockroom.auth.deps import fast_claims, fast_principal
from stockroom.auth.permissions import Perm
from stockroom.catalog import repository
from stockroom.catalog.schemas import product_detail_model
from stockroom.db.session import driver_lease
from stockroom.http.etag import etag_for
from stockroom.http.fastpath import FastRequest

# What the route's `{product_id:uuid}` matches.
_UUID = re.compile(UUIDConvertor.regex)


async def get_product(request: FastRequest) -> Response | None:
    """The fast path of `GET /products/{id}`; None declines."""
    if request.param is None or _UUID.fullmatch(request.param) is None:
        return None
    claims = fast_claims(request)
    if claims is None:
        return None
    product_id = uuid.UUID(request.param)
    async with driver_lease(request.app.state.sessionmaker) as connection:
        principal = await fast_principal(request, connection, claims, Perm.CATALOG_READ)
        if principal is None:
            return None
        row = await repository.get_product_detail(connection, product_id)
    if row is None:
        return None
    model = product_detail_model(principal.can(Perm.COSTS_READ))
    return Response(
        model.model_validate(row).model_dump_json(),
        media_type="application/json",
        headers={"ETag": etag_for(row["version"])},
    )
