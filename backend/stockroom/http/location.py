"""The `Location` of a resource a request created, built one way for every route."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request


def location(request: Request, route: str, **path_params: Any) -> str:
    """The path of the route named `route` (a handler's name, `get_user`) for these path
    parameters: `/api/v1/users/<id>`, with the app's root path in front when it has one.

    From the route table rather than a written path, so a `Location` cannot drift from the
    route that serves it."""
    return request.url_for(route, **path_params).path
