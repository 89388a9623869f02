"""One Settings object, read once from the environment (and `.env`)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The value earlier releases signed tokens with when SECRET_KEY was unset. It is public, so it is
# refused everywhere: a token signed with it must never verify again.
PUBLISHED_SECRET_KEY = "change-me-in-production"
MIN_SECRET_KEY_LENGTH = 32
SECRET_KEY_FILE = "secret_key"


class Environment(StrEnum):
    LOCAL = "local"
    STAGING = "staging"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


class InsecureSettingsError(ValueError):
    """Raised when a production deployment is configured with development defaults."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Environment = Environment.LOCAL
    database_url: str | None = None
    # Connections each API process keeps open. Requests beyond it borrow one of the overflow
    # connections, which are closed again on return: sized too small, a busy process connects
    # and re-prepares its statements on every request.
    database_pool_size: int = Field(default=20, ge=1, le=500)
    database_max_overflow: int = Field(default=10, ge=0, le=500)
    mongodb_url: str | None = None
    mongodb_database: str = "stockroom"
    # Unset in the local environment: a random key generated once into the data folder (see
    # `_resolve_secret_key`). Staging and production must set it.
    secret_key: str = Field(default="", repr=False)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    stockroom_data_dir: Path = Path(".stockroom")
    log_format: LogFormat = LogFormat.CONSOLE
    log_level: str = "INFO"

    # HTTP
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_upload_bytes: int = Field(default=200 * 1_048_576, ge=1024)
    # Peers (addresses or networks, comma-separated) whose X-Forwarded-For/-Proto are believed:
    # the reverse proxy. Default none, so the audit log's request.ip is the socket peer and no
    # client can write its own.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Bearer token /metrics asks for; unset, /metrics answers loopback clients only.
    metrics_token: str | None = Field(default=None, repr=False, min_length=16)

    # Auth
    jwt_algorithm: str = "HS256"
    access_token_expire_minutes: int = Field(default=15, ge=1)
    refresh_token_expire_days: int = Field(default=7, ge=1)
    allow_registration: bool | None = None
    first_admin_email: str | None = None
    first_admin_password: str | None = None
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)

    # Stock
    count_variance_threshold: int = Field(default=10, ge=0)
    idempotency_key_ttl_hours: int = Field(default=24, ge=24)

    # Events
    relay_enabled: bool = True
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_poll_interval_s: float = Field(default=0.5, gt=0, le=1.0)
    outbox_retention_days: int = Field(default=30, ge=0)
    event_retention_days: int = Field(default=0, ge=0)

    # Webhooks
    # The dispatcher runs inside `serve` (and `stockroom relay`) unless turned off here.
    webhook_dispatcher_enabled: bool = True
    # Development and tests only: lets endpoints target loopback and private networks.
    webhook_allow_private_targets: bool = False
    # The contract's 10 s; tests shorten it.
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=10.0)
    webhook_concurrency: int = Field(default=50, ge=1, le=1000)
    webhook_poll_interval_s: float = Field(default=0.5, gt=0, le=5.0)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _split_forwarded(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [peer.strip() for peer in value.split(",") if peer.strip()]
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_forwarded(cls, value: list[str]) -> list[str]:
        for peer in value:
            if peer != "*":
                ipaddress.ip_network(peer, strict=False)  # ValueError names the bad entry
        return value

    @model_validator(mode="after")
    def _resolve_secret_key(self) -> Settings:
        if self.secret_key == PUBLISHED_SECRET_KEY:
            raise InsecureSettingsError(
                "SECRET_KEY is the value published in earlier releases; set a unique random value"
            )
        if self.environment is not Environment.LOCAL:
            if not self.secret_key:
                raise InsecureSettingsError(
                    f"SECRET_KEY must be set to a unique random value when "
                    f"ENVIRONMENT={self.environment.value}"
                )
            if len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
                raise InsecureSettingsError(
                    f"SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters when "
                    f"ENVIRONMENT={self.environment.value}"
                )
        elif not self.secret_key:
            self.secret_key = load_or_create_secret_key(self.stockroom_data_dir)
        return self

    @model_validator(mode="after")
    def _refuse_private_webhook_targets_in_production(self) -> Settings:
        # The contract allows private targets for development and tests only: in production the
        # setting would let anyone with webhooks:manage make the server call its own network.
        if self.is_production and self.webhook_allow_private_targets:
            raise InsecureSettingsError(
                "WEBHOOK_ALLOW_PRIVATE_TARGETS=true is for development and tests; it is refused "
                "when ENVIRONMENT=production (webhooks could reach the internal network)"
            )
        return self

    @property
    def registration_open(self) -> bool:
        if self.allow_registration is not None:
            return self.allow_registration
        return self.environment is not Environment.PRODUCTION

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def uses_embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def uses_in_process_event_store(self) -> bool:
        return self.mongodb_url is None


def load_or_create_secret_key(data_dir: Path) -> str:
    """The install's own signing key: read from the data folder, or generated there once.

    The key is written to a private temporary file (mode 0600) and linked into place, which fails
    if the file exists: two processes starting together agree on one key, neither reads a
    half-written one, and no other local user can read it.
    """
    path = data_dir / SECRET_KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        draft = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process won the race; use its key
        finally:
            draft.unlink()
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    key = path.read_text(encoding="ascii").strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise InsecureSettingsError(f"{path} holds no usable key; delete it to generate a new one")
    return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
