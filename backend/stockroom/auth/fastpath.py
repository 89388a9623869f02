"""`GET /users/me` as a fast path (`stockroom.http.fastpath`): the profile and its session checks
in one query on a leased driver connection, serialized once. It declines what the route
(`auth.router.get_me`) refuses: no or a bad token, an unknown or inactive user, an ended
session."""

from __future__ import annotations

from starlette.responses import Response

from stockroom.auth import repository
from stockroom.auth.deps import fast_claims
from stockroom.auth.router import user_read
from stockroom.db.session import driver_lease
from stockroom.http.etag import etag_for
from stockroom.http.fastpath import FastRequest


async def get_me(request: FastRequest) -> Response | None:
    """The fast path of `GET /users/me`; None declines."""
    claims = fast_claims(request)
    if claims is None:
        return None
    user_id, token_session = claims
    async with driver_lease(request.app.state.sessionmaker) as connection:
        view = await repository.load_profile(connection, user_id, token_session)
    if view is None or not view.user.is_active:
        return None
    request.state["user_id"] = user_id
    return Response(
        user_read(view).model_dump_json(),
        media_type="application/json",
        headers={"ETag": etag_for(view.user.version)},
    )
