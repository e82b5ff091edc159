"""`cxgear secrets …` and `cxgear integrations …` against the API served by a real uvicorn."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from httpx import AsyncClient
from typer.testing import CliRunner

from cxgear.cli import app as cli
from infra.settings import Settings
from tests.api.test_data_tables import live_api
from tests.builders import Account, signup
from tests.fakes.openai_api import FakeOpenAI, running_openai

runner = CliRunner()


@pytest.fixture(scope="module")
def api_url(settings: Settings) -> Iterator[str]:
    with live_api(settings) as url:
        yield url


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAI]:
    with running_openai() as fake:
        yield fake


async def cx(
    api_url: str, account: Account, *args: str, stdin: str | None = None
) -> tuple[int, str]:
    # The API runs in this process's event loop thread pool; keep the loop free while the CLI waits.
    result = await asyncio.to_thread(
        runner.invoke,
        cli,
        list(args),
        input=stdin,
        env={"CXGEAR_API_URL": api_url, "CXGEAR_TOKEN": account.token, "COLUMNS": "200"},
    )
    return result.exit_code, result.output


class TestSecretsCli:
    async def test_set_list_rotate_delete_never_print_the_value(
        self, client: AsyncClient, api_url: str
    ) -> None:
        admin = await signup(client)
        value = f"tok-{uuid.uuid4().hex}"
        code, output = await cx(api_url, admin, "secrets", "set", "crm_token", stdin=value + "\n")
        assert code == 0, output
        assert "crm_token is now at version 1" in output
        code, output = await cx(
            api_url, admin, "secrets", "set", "crm_token", "--cas", "1", stdin="rotated"
        )
        assert code == 0 and "version 2" in output
        code, output = await cx(
            api_url, admin, "secrets", "set", "crm_token", "--cas", "1", stdin="stale"
        )
        assert code == 1 and "VERSION_CONFLICT" in output
        code, output = await cx(api_url, admin, "secrets", "list")
        assert code == 0 and "crm_token" in output
        assert value not in output and "rotated" not in output
        code, output = await cx(api_url, admin, "secrets", "delete", "crm_token")
        assert code == 0
        code, output = await cx(api_url, admin, "secrets", "list")
        assert "crm_token" not in output


class TestIntegrationsCli:
    async def test_list_and_test_connection(
        self, client: AsyncClient, api_url: str, openai_fake: FakeOpenAI
    ) -> None:
        admin = await signup(client)
        made = {}
        for name, key in (("good", openai_fake.api_key), ("bad", "sk-wrong")):
            r = await client.post(
                "/api/v1/integrations",
                json={
                    "kind": "openai",
                    "name": name,
                    "config": {"base_url": openai_fake.base_url, "default_model": "gpt-4o-mini"},
                    "credentials": {"api_key": key},
                },
                headers=admin.headers,
            )
            assert r.status_code == 201, r.text
            made[name] = r.json()["id"]
        code, output = await cx(api_url, admin, "integrations", "list")
        assert code == 0 and made["good"] in output and "api_key" in output
        code, output = await cx(api_url, admin, "integrations", "test", made["good"])
        assert code == 0 and '"ok": true' in output
        code, output = await cx(api_url, admin, "integrations", "test", made["bad"])
        assert code == 1 and '"ok": false' in output and "sk-wrong" not in output
