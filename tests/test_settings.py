from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from stockroom.settings import DEFAULT_SECRET_KEY, Environment, LogFormat, Settings


def build(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_production_refuses_the_default_secret_key() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        build(environment="production", secret_key=DEFAULT_SECRET_KEY)


def test_production_refuses_a_short_secret_key() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        build(environment="production", secret_key="short")


def test_production_accepts_a_real_secret_and_closes_registration() -> None:
    settings = build(environment="production", secret_key="x" * 40)
    assert settings.is_production
    assert settings.registration_open is False


def test_local_defaults_are_embedded_and_open() -> None:
    settings = build()
    assert settings.environment is Environment.LOCAL
    assert settings.uses_embedded_postgres
    assert settings.uses_in_process_event_store
    assert settings.registration_open is True
    assert settings.access_token_expire_minutes == 15
    assert settings.count_variance_threshold == 10


def test_environment_variables_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/stock")
    monkeypatch.setenv("COUNT_VARIANCE_THRESHOLD", "3")
    monkeypatch.setenv("ALLOW_REGISTRATION", "false")
    settings = build()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.log_format is LogFormat.JSON
    assert settings.database_url == "postgresql://u:p@db:5432/stock"
    assert settings.count_variance_threshold == 3
    assert settings.registration_open is False


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "moon")
    with pytest.raises(ValidationError, match="environment"):
        build()


def test_cli_explains_an_insecure_production_start_in_one_line(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stockroom.cli", "serve"],
        env={"ENVIRONMENT": "production", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SECRET_KEY" in lines[0]
