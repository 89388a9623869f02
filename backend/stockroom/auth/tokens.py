"""JWT access tokens (PyJWT, algorithm pinned on decode) and opaque refresh token helpers."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from stockroom.settings import Settings
from stockroom.types import utcnow

ACCESS_TOKEN_TYPE = "access"
MAX_TOKEN_LENGTH = 4096  # anything longer is refused before any parsing
LEEWAY_SECONDS = 5
# Tokens whose signature and claims were verified, kept so a client's next requests with the
# same token skip PyJWT's parsing and HMAC (~0.3 ms of CPU a request, measured). Expiry is
# checked again on every use; only tokens that verified are kept; bounded, least recently used
# dropped first.
VERIFIED_TOKENS_CACHED = 4096


class InvalidToken(Exception):
    """The token is missing, malformed, expired, not yet valid, or of the wrong type."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    jti: str
    issued_at: datetime
    expires_at: datetime


def create_access_token(
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    settings: Settings,
    *,
    now: datetime | None = None,
) -> tuple[str, int]:
    """An access token for `user_id` in the session (refresh-token family) `session_id`, and
    its lifetime in seconds. It works only while that session is live (see auth.deps)."""
    issued = now or utcnow()
    lifetime = timedelta(minutes=settings.access_token_expire_minutes)
    claims = {
        "sub": str(user_id),
        "sid": str(session_id),
        # To the microsecond (RFC 7519 allows a fraction): compared with the moment the user's
        # password changed, a token issued just after it in the same second must still work.
        "iat": issued.timestamp(),
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": secrets.token_hex(16),
        "type": ACCESS_TOKEN_TYPE,
    }
    token = jwt.encode(claims, settings.secret_key, algorithm=settings.jwt_algorithm)
    return token, int(lifetime.total_seconds())


def decode_access_token(token: str, settings: Settings) -> AccessClaims:
    """The claims of a valid access token; InvalidToken otherwise."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("token missing or too long")
    claims = _verified(token, settings.secret_key, settings.jwt_algorithm)
    # As PyJWT checks it: a cached token expires on time too.
    if claims.expires_at.timestamp() <= time.time() - LEEWAY_SECONDS:
        raise InvalidToken("Signature has expired")
    return claims


@functools.lru_cache(maxsize=VERIFIED_TOKENS_CACHED)
def _verified(token: str, secret_key: str, algorithm: str) -> AccessClaims:
    """Verify and decode; cached by (token, key, algorithm), so a changed key verifies anew.
    A refused token raises, and lru_cache keeps no exception."""
    try:
        claims = jwt.decode(
            token,
            secret_key,
            algorithms=[algorithm],
            options={"require": ["exp", "iat", "sub", "sid", "jti", "type"]},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if claims.get("type") != ACCESS_TOKEN_TYPE:
        raise InvalidToken("not an access token")
    try:
        user_id = uuid.UUID(str(claims["sub"]))
        session_id = uuid.UUID(str(claims["sid"]))
        issued_at = datetime.fromtimestamp(float(claims["iat"]), UTC)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidToken("bad subject, session or issue time") from exc
    return AccessClaims(
        user_id=user_id,
        session_id=session_id,
        jti=str(claims["jti"]),
        issued_at=issued_at,
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
    )


def new_refresh_token() -> str:
    """An opaque random refresh token; only its hash is ever stored."""
    return secrets.token_urlsafe(48)


def hash_refresh_token(token: str) -> str:
    # A fast hash is right here: the token has 384 bits of entropy, so it cannot be brute-forced.
    return hashlib.sha256(token.encode()).hexdigest()
