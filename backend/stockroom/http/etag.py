"""ETag / If-Match for optimistic concurrency on mutable resources."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Response

from stockroom.http.errors import PreconditionFailed


def etag_for(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag_for(version)


def check_if_match(if_match: str | None, version: int) -> None:
    """Raise 412 when `If-Match` is given and matches neither `*` nor the current version.

    An absent `If-Match` is allowed (the contract does not require 428); weak tags compare equal.
    """
    if if_match is None:
        return
    current = etag_for(version)
    for candidate in (tag.strip() for tag in if_match.split(",")):
        if candidate == "*" or candidate.removeprefix("W/") == current:
            return
    raise PreconditionFailed()


IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", description="the ETag you read; 412 if the resource changed since"),
]
