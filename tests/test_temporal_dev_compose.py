"""temporal-dev.yml stays in step with Settings: every CXGEAR_* variable is real, ports agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from cxgear.stack.temporal import SEARCH_ATTRIBUTES
from infra.settings import Settings

COMPOSE = Path(__file__).resolve().parent.parent / "temporal-dev.yml"
APP_SERVICES = ("api", "worker", "migrate")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    found = loaded["services"]
    assert isinstance(found, dict)
    return found


def default(field: str) -> Any:
    # The declared default, not Settings(): the developer's own CXGEAR_* variables must not count.
    return Settings.model_fields[field].default


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def port_pairs(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host, container) for each "host:container" mapping."""
    pairs = []
    for mapping in service.get("ports", []):
        host, container = str(mapping).rsplit(":", 1)
        pairs.append((int(host.rsplit(":", 1)[-1]), int(container.split("/")[0])))
    return pairs


def container_port(service: dict[str, Any]) -> int:
    ports = port_pairs(service)
    assert len(ports) == 1, ports
    return ports[0][1]


class TestServices:
    def test_the_whole_stack_is_there(self, services: dict[str, Any]) -> None:
        expected = {"postgresql", "temporal", "temporal-ui", "openbao", "api", "worker"}
        assert expected <= set(services)

    def test_postgres_is_16(self, services: dict[str, Any]) -> None:
        assert services["postgresql"]["image"] == "postgres:16"

    def test_temporal_uses_the_postgresql_service(self, services: dict[str, Any]) -> None:
        env = env_of(services["temporal"])
        assert services["temporal"]["image"].startswith("temporalio/auto-setup:")
        assert env["DB"] == "postgres12"
        assert env["POSTGRES_SEEDS"] == "postgresql"
        assert int(env["DB_PORT"]) == container_port(services["postgresql"])

    @pytest.mark.parametrize("name", ["api", "worker"])
    def test_app_services_build_from_the_deploy_dockerfile(
        self, services: dict[str, Any], name: str
    ) -> None:
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"


class TestSettingsAgree:
    @pytest.mark.parametrize("name", APP_SERVICES)
    def test_every_cxgear_variable_is_a_settings_field(
        self, services: dict[str, Any], name: str
    ) -> None:
        prefix = Settings.model_config.get("env_prefix", "")
        assert prefix == "CXGEAR_"
        variables = [k for k in env_of(services[name]) if k.startswith(prefix)]
        assert variables, f"{name} sets no CXGEAR_ variables"
        unknown = [
            v for v in variables if v.removeprefix(prefix).lower() not in Settings.model_fields
        ]
        assert unknown == []

    @pytest.mark.parametrize("name", APP_SERVICES)
    def test_every_value_is_accepted_by_settings(self, services: dict[str, Any], name: str) -> None:
        env = env_of(services[name])
        values = {
            k.removeprefix("CXGEAR_").lower(): re.sub(r"\$\{[^:}]+:-([^}]*)\}", r"\1", v)
            for k, v in env.items()
            if k.startswith("CXGEAR_")
        }
        settings = Settings.model_validate(values)
        assert settings.environment == "development"

    def test_api_port_is_the_settings_default(self, services: dict[str, Any]) -> None:
        api_port = default("api_port")
        assert (api_port, api_port) in port_pairs(services["api"])
        assert int(env_of(services["api"]).get("CXGEAR_API_PORT", api_port)) == api_port

    def test_temporal_ports_are_the_settings_defaults(self, services: dict[str, Any]) -> None:
        grpc = urlsplit(f"tcp://{default('temporal_address')}").port
        assert grpc == 7233
        assert (grpc, 7233) in port_pairs(services["temporal"])
        ui_port = default("temporal_ui_port")
        assert ui_port == 8233
        assert [host for host, _ in port_pairs(services["temporal-ui"])] == [ui_port]

    @pytest.mark.parametrize("name", ["api", "worker"])
    def test_database_url_points_at_the_postgresql_service(
        self, services: dict[str, Any], name: str
    ) -> None:
        url = make_url(env_of(services[name])["CXGEAR_DATABASE_URL"])
        assert url.drivername == "postgresql+psycopg"
        assert url.host == "postgresql"
        assert url.port == container_port(services["postgresql"])
        db_env = env_of(services["postgresql"])
        assert url.username == db_env["POSTGRES_USER"]
        assert url.password == db_env["POSTGRES_PASSWORD"]
        assert url.database == db_env["POSTGRES_DB"]

    def test_the_host_port_of_postgresql_is_the_settings_default(
        self, services: dict[str, Any]
    ) -> None:
        # So `cxgear migrate` on the host reaches the container without any variable set.
        default_port = make_url(default("database_url")).port
        assert default_port in [host for host, _ in port_pairs(services["postgresql"])]

    @pytest.mark.parametrize("name", ["api", "worker"])
    def test_temporal_and_vault_addresses_name_services(
        self, services: dict[str, Any], name: str
    ) -> None:
        env = env_of(services[name])
        temporal = urlsplit(f"tcp://{env['CXGEAR_TEMPORAL_ADDRESS']}")
        assert temporal.hostname == "temporal"
        assert temporal.port == 7233
        vault = urlsplit(env["CXGEAR_VAULT_ADDRESS"])
        assert vault.hostname == "openbao"
        assert vault.port == container_port(services["openbao"])
        assert (vault.port, vault.port) in port_pairs(services["openbao"])
        assert f"-dev-root-token-id={env['CXGEAR_VAULT_TOKEN']}" in services["openbao"]["command"]

    def test_search_attributes_match_the_embedded_server(self, services: dict[str, Any]) -> None:
        script = " ".join(services["temporal-setup"]["command"])
        registered = dict(re.findall(r"\b(Cx\w+)=(\w+)", script))
        assert registered == SEARCH_ATTRIBUTES
