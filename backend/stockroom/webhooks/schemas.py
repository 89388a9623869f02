"""Request and response models of the webhooks API. No read model has a `secret` field: the
secret is only in `WebhookCreated` (the create response) and `WebhookSecret` (rotation)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DeliveryStatus = Literal["pending", "succeeded", "failed"]

_PATTERN = re.compile(r"^(\*|[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*(\.\*|\*)?)$")

EventPattern = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        description="an exact event type (`product.created`) or a prefix ending in `*` "
        "(`stock.*`); `*` alone matches every type",
        examples=["stock.*"],
    ),
]
Url = Annotated[str, Field(min_length=1, max_length=2000, examples=["https://example.com/hooks"])]


def _check_patterns(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        if not _PATTERN.match(pattern):
            raise ValueError(
                f"{pattern!r} is not an event type or a prefix ending in '*' (as in /activity)"
            )
    return list(dict.fromkeys(patterns))  # duplicates dropped, order kept


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: list[EventPattern] = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    is_active: bool = True
    include_costs: bool = Field(
        default=False,
        description="send cost fields (cost_price, unit_cost, margin) in bodies; setting it "
        "needs costs:read",
    )

    _patterns = field_validator("event_types")(_check_patterns)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: list[EventPattern] | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    is_active: bool | None = None
    include_costs: bool | None = None

    @field_validator("event_types")
    @classmethod
    def _valid_patterns(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_patterns(value)


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    is_active: bool
    include_costs: bool
    disabled_reason: str | None = Field(
        description="why the endpoint was disabled automatically (410 Gone, 5 days of failures)"
    )
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(
        description="`whsec_` + base64 of 32 random bytes: shown in this response only",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookSecret(BaseModel):
    secret: str = Field(description="the new secret: shown in this response only")
    previous_secret_expires_at: datetime = Field(
        description="until then deliveries carry signatures with both the new and the old secret"
    )


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    attempted_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_excerpt: str | None = Field(description="the first 1000 characters of the body")


class DeliveryQueued(BaseModel):
    delivery_id: uuid.UUID
