"""Errors of the webhooks domain."""

from __future__ import annotations

from stockroom.http.errors import Conflict, NotFound, ValidationFailed


class EndpointNotFound(NotFound):
    default_detail = "webhook endpoint not found"


class DeliveryNotFound(NotFound):
    default_detail = "webhook delivery not found"


class TargetForbidden(ValidationFailed):
    """The URL may not be delivered to: not https in production, or not a public address."""

    code = "webhook_target_forbidden"
    default_detail = "the webhook URL is not an allowed target"


class DeliveryNotFailed(Conflict):
    code = "delivery_not_failed"
    default_detail = "only a failed delivery can be retried"


class EndpointInactive(Conflict):
    code = "webhook_inactive"
    default_detail = "the endpoint is not active; activate it first"
