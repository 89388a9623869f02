"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine); check their shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_has_the_stack_with_health_checks() -> None:
    services = compose()["services"]
    assert set(services) == {"traefik", "api", "postgres", "mongo"}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        assert service["healthcheck"]["test"], name
    assert services["postgres"]["image"].startswith("postgres:18")
    assert services["mongo"]["image"].startswith("mongo:8")


def test_api_runs_two_replicas_after_healthy_databases() -> None:
    api = compose()["services"]["api"]
    assert api["deploy"]["replicas"] == 2
    assert api["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "mongo": {"condition": "service_healthy"},
    }
    assert api["env_file"] == ".env"
    assert "ports" not in api, "the API is reached through Traefik only"
    assert any("traefik.enable=true" in label for label in api["labels"])


def test_databases_keep_their_data_in_volumes() -> None:
    data = compose()
    assert data["services"]["postgres"]["volumes"][0].startswith("postgres-data:")
    assert data["services"]["mongo"]["volumes"][0].startswith("mongo-data:")
    assert set(data["volumes"]) == {"postgres-data", "mongo-data"}


def test_env_example_names_every_variable_compose_needs() -> None:
    example = (ROOT / ".env.example").read_text()
    for name in ("SECRET_KEY", "POSTGRES_PASSWORD", "DATABASE_URL", "MONGODB_URL", "ENVIRONMENT"):
        assert f"{name}=" in example


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert dockerfile.count("\nFROM ") + dockerfile.startswith("FROM ") >= 2
    assert "uv sync --locked" in dockerfile
    assert "\nUSER stockroom" in dockerfile
    assert "HEALTHCHECK" in dockerfile
    assert '"stockroom", "serve"' in dockerfile
