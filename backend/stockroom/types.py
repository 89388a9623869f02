"""Value types every layer may use (the bottom layer: imports nothing of ours): money, UTC
datetimes and safe text."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    EmailStr,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

MoneyStr = Annotated[
    Decimal,
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str, when_used="json"),
    Field(json_schema_extra={"type": "string", "format": "decimal", "example": "10.50"}),
]
"""An amount of money in a response: a decimal string with two places ("10.50")."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """The same instant in UTC; a naive value is taken as UTC already (BSON dates, CLI input)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# C0 and C1 control characters except tab and newline, and lone surrogates (a JSON body can
# carry "\ud800", which neither PostgreSQL nor a UTF-8 encoder accepts as text).
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
UNSAFE_TEXT_MESSAGE = (
    "must not contain NUL or other control characters (tab and newline are allowed)"
)


def has_unsafe_characters(value: str) -> bool:
    return _UNSAFE_CHARACTERS.search(value) is not None


def refuse_unsafe_characters(value: str) -> str:
    """`value` unchanged, or ValueError (a 422) if it holds a character no text input accepts.

    PostgreSQL cannot store NUL at all (it used to be a 500), and the other control characters
    only ever arrive by mistake or to confuse a log, a terminal or a spreadsheet.
    """
    if _UNSAFE_CHARACTERS.search(value):
        raise ValueError(UNSAFE_TEXT_MESSAGE)
    return value


SAFE_TEXT_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"
"""`_UNSAFE_CHARACTERS` as the OpenAPI document states it (lone surrogates cannot be drawn from
a JSON Schema pattern, and a generated client never sends one)."""


def _refuse_unsafe_input(value: object) -> object:
    # Before any other step: stripping would silently drop a trailing "\x85" or "\x1f" (Python
    # counts them as whitespace), and the caller must hear about such text, not lose part of it.
    return refuse_unsafe_characters(value) if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class _SafeTextCheck:
    """`_refuse_unsafe_input` before the other checks, and the rule in the JSON schema."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(_refuse_unsafe_input, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if "pattern" in json_schema:  # a field's own pattern (sku, code): both must hold
            json_schema.setdefault("allOf", []).append({"pattern": SAFE_TEXT_PATTERN})
        else:
            json_schema["pattern"] = SAFE_TEXT_PATTERN
        return json_schema


SAFE_TEXT = _SafeTextCheck()
"""The check of `SafeText`, for text with limits: `Annotated[str, StringConstraints(...),
SAFE_TEXT]`. It runs on the text as sent, before stripping, lengths and patterns; write it last,
so that the constraints before it stay on the string itself (pydantic applies constraints written
after a validator generically: lengths before stripping)."""

# The special-use names (RFC 6761 and kin) email-validator refuses as an address's domain, or as
# its last labels, in any case: `.test`, `localhost`, ... A JSON Schema `format: email` does not
# exclude them, so the document states the refusal as a pattern (ECMA-262, hence the letter
# classes instead of a case-insensitive flag). `test_email_pattern_names_what_is_refused` keeps
# the list equal to email-validator's.
SPECIAL_USE_DOMAINS = ("arpa", "invalid", "local", "localhost", "onion", "test")
PUBLIC_DOMAIN_PATTERN = (
    r"^(?![^@]*@(?:[^@]*\.)?(?:"
    + "|".join("".join(f"[{c.upper()}{c}]" for c in name) for name in SPECIAL_USE_DOMAINS)
    + r")$)"
)


@dataclass(frozen=True, slots=True)
class _PublicDomainRule:
    """`PUBLIC_DOMAIN_PATTERN` in the JSON schema of an email (the check is email-validator's)."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("allOf", []).append({"pattern": PUBLIC_DOMAIN_PATTERN})
        return json_schema


Email = Annotated[EmailStr, SAFE_TEXT, _PublicDomainRule()]
"""An email address from a caller: safe text, deliverable syntax, not at a special-use domain."""

SafeText = Annotated[str, SAFE_TEXT]
"""Text from a caller (a body field, a query parameter, a CSV cell): NUL or another control
character other than tab and newline is a 422. Every text input is of this type."""


# Money in a request is a decimal string (CONTRACT: "never a float") that `Numeric(12, 2)` holds:
# at most 10 integer digits without leading zeros, at most 2 places. The pattern is checked
# before Decimal parsing, so the OpenAPI document states exactly what is accepted ("1e3",
# "1_000", " 5" and 10.5 as a JSON number are refused, as the schema says).
MONEY_PATTERN = r"^(0|[1-9]\d{0,9})(\.\d{1,2})?$"
POSITIVE_MONEY_PATTERN = r"^([1-9]\d{0,9}(\.\d{1,2})?|0\.(0[1-9]|[1-9]\d?))$"


def _money_string(pattern: str, what: str) -> Callable[[object], object]:
    compiled = re.compile(pattern)

    def check(value: object) -> object:
        if isinstance(value, Decimal):  # built in code, not parsed from a request
            return value
        if not isinstance(value, str) or not compiled.match(value):
            raise ValueError(f'expected {what} decimal string such as "10.50"')
        return value

    return check


MoneyIn = Annotated[
    Decimal,
    BeforeValidator(_money_string(MONEY_PATTERN, "a non-negative")),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN, "examples": ["10.50"]}),
]
"""An amount of money >= 0 in a request: a decimal string like "10.50"."""

PositiveMoneyIn = Annotated[
    Decimal,
    BeforeValidator(_money_string(POSITIVE_MONEY_PATTERN, "a positive")),
    WithJsonSchema({"type": "string", "pattern": POSITIVE_MONEY_PATTERN, "examples": ["10.50"]}),
]
"""An amount of money > 0 in a request: a decimal string like "10.50"."""


def _whole_number(value: object) -> object:
    # JSON Schema's `integer` is a number with no fraction, so 3.0 is one; "3" and true are not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WHOLE_NUMBER = BeforeValidator(_whole_number)
"""For an integer in a request body, as the OpenAPI document's `integer` means it: 3 and 3.0 are
accepted, "3", 3.5 and true refused (422). It goes last, after the bounds, so that they stay
JSON Schema keywords: `Annotated[int, Field(strict=True, gt=0, le=...), WHOLE_NUMBER]`."""


def _drop_null(schema: dict[str, Any]) -> None:
    variants = schema.get("anyOf")
    if not isinstance(variants, list):
        return
    rest = [v for v in variants if v != {"type": "null"}]
    if len(rest) == 1:
        del schema["anyOf"]
        schema.update({**rest[0], **schema})
    else:
        schema["anyOf"] = rest


NOT_NULL = Field(json_schema_extra=_drop_null)
"""For a field of a partial update that may be left out but not cleared:
`name: Annotated[Name | None, NOT_NULL] = None`. The schema says the value is never null (a
validator of the model refuses an explicit null); the Python type stays `X | None`, so that an
error's `loc` is the field's own (`["body", "name"]`), with no union branch in it."""
