from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from stockroom.settings import PUBLISHED_SECRET_KEY, Environment, LogFormat, Settings


def build(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A generated key goes to the test's own folder, never the checkout's `.stockroom/`.
    monkeypatch.setenv("STOCKROOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SECRET_KEY", raising=False)


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_staging_and_production_refuse_a_missing_secret_key(environment: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY must be set"):
        build(environment=environment)


@pytest.mark.parametrize("environment", ["local", "staging", "production"])
def test_the_published_secret_key_is_refused_everywhere(environment: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        build(environment=environment, secret_key=PUBLISHED_SECRET_KEY)


def test_staging_refuses_a_short_secret_key() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        build(environment="staging", secret_key="s" * 31)


def test_without_secret_key_a_private_key_is_generated_in_the_data_folder(tmp_path: Path) -> None:
    settings = build()
    key_file = tmp_path / "data" / "secret_key"
    assert key_file.read_text().strip() == settings.secret_key
    assert len(settings.secret_key) >= 48
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert settings.secret_key != PUBLISHED_SECRET_KEY
    assert build(stockroom_data_dir=tmp_path / "other").secret_key != settings.secret_key


def test_the_generated_key_survives_a_restart(tmp_path: Path) -> None:
    def key_seen_by_a_new_process() -> str:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from stockroom.settings import Settings; "
                "print(Settings(_env_file=None).secret_key)",
            ],
            env={**os.environ, "STOCKROOM_DATA_DIR": str(tmp_path / "data")},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout.strip()

    first = key_seen_by_a_new_process()
    assert len(first) >= 32
    assert key_seen_by_a_new_process() == first


def test_a_key_file_readable_by_others_is_made_private(tmp_path: Path) -> None:
    key = build().secret_key
    key_file = tmp_path / "data" / "secret_key"
    key_file.chmod(0o644)
    assert build().secret_key == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_an_empty_key_file_is_refused_not_used(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret_key").write_text("\n")
    with pytest.raises(ValidationError, match="no usable key"):
        build()


def test_production_refuses_a_short_secret_key() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        build(environment="production", secret_key="short")


def test_production_accepts_a_real_secret_and_closes_registration() -> None:
    settings = build(environment="production", secret_key="x" * 40)
    assert settings.is_production
    assert settings.registration_open is False


def test_production_refuses_private_webhook_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_ALLOW_PRIVATE_TARGETS"):
        build(environment="production", secret_key="s" * 40, webhook_allow_private_targets=True)
    with monkeypatch.context() as env:  # as a deployment sets it
        env.setenv("ENVIRONMENT", "production")
        env.setenv("SECRET_KEY", "s" * 40)
        env.setenv("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
        with pytest.raises(ValidationError, match="refused when ENVIRONMENT=production"):
            build()
    # Where the contract allows it (development, tests, staging), and production without it.
    assert build(environment="local", webhook_allow_private_targets=True)
    assert build(environment="staging", secret_key="s" * 40, webhook_allow_private_targets=True)
    assert not build(environment="production", secret_key="s" * 40).webhook_allow_private_targets


def test_local_defaults_are_embedded_and_open() -> None:
    settings = build()
    assert settings.secret_key
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
