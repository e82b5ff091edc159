from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from httpx import AsyncClient

from cxgear.stack.seaweedfs import EmbeddedSeaweedFS
from infra.settings import Settings
from infra.vault import SecretNotFound, SecretStore
from tests.builders import Account, as_user, invite, signup
from tests.fakes.deepgram_api import running_deepgram
from tests.fakes.listener import listening
from tests.fakes.openai_api import running_openai
from tests.fakes.sendgrid_api import running_sendgrid
from tests.fakes.signed import FAKE_HOST
from tests.fakes.twilio_api import running_twilio

INTEGRATIONS = "/api/v1/integrations"


async def create(
    client: AsyncClient,
    account: Account,
    *,
    kind: str,
    config: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    name: str | None = None,
) -> Any:
    body: dict[str, Any] = {"kind": kind, "name": name or f"{kind} {uuid.uuid4().hex[:6]}"}
    if config is not None:
        body["config"] = config
    if credentials is not None:
        body["credentials"] = credentials
    return await client.post(INTEGRATIONS, json=body, headers=account.headers)


def row_text(settings: Settings, integration_id: str) -> str:
    """The whole database row as text, to prove no credential value is stored in it."""
    with psycopg.connect(settings.database_url.replace("+psycopg", "")) as conn:
        row = conn.execute(
            "select row_to_json(i)::text from integration i where id = %s", (integration_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


async def connection_test(client: AsyncClient, account: Account, integration_id: str) -> Any:
    r = await client.post(f"{INTEGRATIONS}/{integration_id}/test", headers=account.headers)
    assert r.status_code == 200, r.text
    return r.json()


class TestCreate:
    async def test_openai_credentials_land_in_vault_not_in_db_or_responses(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        key = f"sk-{uuid.uuid4().hex}"
        r = await create(
            client,
            admin,
            kind="openai",
            config={"base_url": "https://llm.example.com/v1", "default_model": "gpt-4.1-mini"},
            credentials={"api_key": key},
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["kind"] == "openai"
        assert body["config"] == {
            "base_url": "https://llm.example.com/v1",
            "default_model": "gpt-4.1-mini",
        }
        assert body["credentialFields"] == ["api_key"]
        assert body["isMock"] is False
        assert key not in r.text
        got = await client.get(f"{INTEGRATIONS}/{body['id']}", headers=admin.headers)
        listing = await client.get(INTEGRATIONS, headers=admin.headers)
        assert key not in got.text and key not in listing.text
        assert key not in row_text(settings, body["id"])
        stored = await SecretStore(settings).read_credentials(
            uuid.UUID(admin.org_id), uuid.UUID(body["id"])
        )
        assert stored == {"api_key": key}

    async def test_every_kind_can_be_created(self, client: AsyncClient) -> None:
        admin = await signup(client)
        cases: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
            ("openai", {}, {"api_key": "sk-x"}),
            ("mock", {}, None),
            ("twilio", {}, {"account_sid": "AC123", "auth_token": "tok"}),
            ("sendgrid", {"api_base_url": "https://sg.example.com"}, {"api_key": "SG.x"}),
            ("deepgram", {}, {"api_key": "dg"}),
        ]
        for kind, config, credentials in cases:
            r = await create(client, admin, kind=kind, config=config, credentials=credentials)
            assert r.status_code == 201, (kind, r.text)
        listing = (await client.get(INTEGRATIONS, headers=admin.headers)).json()
        assert sorted(x["kind"] for x in listing["data"]) == sorted(c[0] for c in cases)

    async def test_mock_says_it_is_a_mock_and_takes_no_credentials(
        self, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        r = await create(client, admin, kind="mock")
        assert r.status_code == 201, r.text
        assert r.json()["isMock"] is True
        assert "mock" in r.json()["label"].lower()
        assert r.json()["credentialFields"] == []
        refused = await create(client, admin, kind="mock", credentials={"api_key": "x"})
        assert refused.status_code == 422

    @pytest.mark.parametrize(
        ("kind", "config", "credentials", "field"),
        [
            ("openai", {}, None, None),
            ("openai", {}, {"api_key": ""}, "credentials.api_key"),
            ("twilio", {}, {"account_sid": "AC1"}, "credentials.auth_token"),
            (
                "twilio",
                {"api_base_url": "not a url"},
                {"account_sid": "A", "auth_token": "t"},
                None,
            ),
            ("sendgrid", {"event_public_key": "bm90IGEga2V5"}, {"api_key": "k"}, None),
            ("deepgram", {"region": "eu"}, {"api_key": "k"}, "config.region"),
        ],
    )
    async def test_bad_config_or_credentials_are_422_without_echoing_them(
        self,
        client: AsyncClient,
        kind: str,
        config: dict[str, Any],
        credentials: dict[str, Any] | None,
        field: str | None,
    ) -> None:
        admin = await signup(client)
        r = await create(client, admin, kind=kind, config=config, credentials=credentials)
        assert r.status_code == 422, r.text
        assert r.json()["errorCode"] == "VALIDATION_ERROR"
        if field:
            assert field in r.text
        assert (await client.get(INTEGRATIONS, headers=admin.headers)).json()["count"] == 0

    async def test_duplicate_name_is_409(self, client: AsyncClient) -> None:
        admin = await signup(client)
        assert (await create(client, admin, kind="mock", name="LLM")).status_code == 201
        again = await create(client, admin, kind="mock", name="LLM")
        assert again.status_code == 409
        assert again.json()["errorCode"] == "NAME_TAKEN"

    async def test_sendgrid_event_key_is_public_config(self, client: AsyncClient) -> None:
        admin = await signup(client)
        with running_sendgrid() as fake:
            r = await create(
                client,
                admin,
                kind="sendgrid",
                config={**fake.config, "event_public_key": fake.public_key_b64},
                credentials=fake.creds,
            )
        assert r.status_code == 201, r.text
        assert r.json()["config"]["event_public_key"] == fake.public_key_b64
        assert fake.api_key not in r.text


class TestUpdateAndDelete:
    async def test_rotating_credentials_writes_vault_only(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        created = (
            await create(client, admin, kind="deepgram", credentials={"api_key": "old-key"})
        ).json()
        r = await client.patch(
            f"{INTEGRATIONS}/{created['id']}",
            json={"credentials": {"api_key": "new-key"}, "name": "Deepgram EU"},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "Deepgram EU"
        assert "new-key" not in r.text
        stored = await SecretStore(settings).read_credentials(
            uuid.UUID(admin.org_id), uuid.UUID(created["id"])
        )
        assert stored == {"api_key": "new-key"}
        assert "new-key" not in row_text(settings, created["id"])

    async def test_delete_removes_credentials_from_vault(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        created = (await create(client, admin, kind="openai", credentials={"api_key": "k"})).json()
        r = await client.delete(f"{INTEGRATIONS}/{created['id']}", headers=admin.headers)
        assert r.status_code == 204
        assert (
            await client.get(f"{INTEGRATIONS}/{created['id']}", headers=admin.headers)
        ).status_code == 404
        with pytest.raises(SecretNotFound):
            await SecretStore(settings).read_credentials(
                uuid.UUID(admin.org_id), uuid.UUID(created["id"])
            )

    async def test_delete_refused_while_a_channel_uses_it(self, client: AsyncClient) -> None:
        admin = await signup(client)
        twilio = (
            await create(
                client, admin, kind="twilio", credentials={"account_sid": "AC1", "auth_token": "t"}
            )
        ).json()
        channel = await client.post(
            "/api/v1/channels",
            json={
                "kind": "sms",
                "name": "Support SMS",
                "integrationId": twilio["id"],
                "sender": "+14155550100",
            },
            headers=admin.headers,
        )
        assert channel.status_code == 201, channel.text
        r = await client.delete(f"{INTEGRATIONS}/{twilio['id']}", headers=admin.headers)
        assert r.status_code == 409
        assert r.json()["errorCode"] == "INTEGRATION_IN_USE"
        await client.delete(f"/api/v1/channels/{channel.json()['id']}", headers=admin.headers)
        assert (
            await client.delete(f"{INTEGRATIONS}/{twilio['id']}", headers=admin.headers)
        ).status_code == 204


class TestConnection:
    async def test_openai_ok_and_wrong_key(self, client: AsyncClient) -> None:
        admin = await signup(client)
        with running_openai() as fake:
            good = (
                await create(
                    client, admin, kind="openai", config=fake.config, credentials=fake.creds
                )
            ).json()
            bad = (
                await create(
                    client,
                    admin,
                    kind="openai",
                    config=fake.config,
                    credentials={"api_key": "sk-bad"},
                )
            ).json()
            ok = await connection_test(client, admin, good["id"])
            wrong = await connection_test(client, admin, bad["id"])
        assert ok["ok"] is True, ok
        assert wrong["ok"] is False
        assert "401" in wrong["detail"]
        assert "sk-bad" not in wrong["detail"] and fake.api_key not in str(ok)

    async def test_twilio_ok_and_wrong_token(self, client: AsyncClient) -> None:
        admin = await signup(client)
        with running_twilio() as fake:
            good = (
                await create(
                    client, admin, kind="twilio", config=fake.config, credentials=fake.creds
                )
            ).json()
            wrong_creds = {"account_sid": fake.account_sid, "auth_token": "wrong-token"}
            bad = (
                await create(
                    client, admin, kind="twilio", config=fake.config, credentials=wrong_creds
                )
            ).json()
            ok = await connection_test(client, admin, good["id"])
            wrong = await connection_test(client, admin, bad["id"])
        assert ok["ok"] is True, ok
        assert wrong == {"ok": False, "detail": "Twilio rejected the credentials (HTTP 401)"}
        assert fake.auth_token not in str(ok)

    async def test_sendgrid_ok_and_wrong_key(self, client: AsyncClient) -> None:
        admin = await signup(client)
        with running_sendgrid() as fake:
            good = (
                await create(
                    client, admin, kind="sendgrid", config=fake.config, credentials=fake.creds
                )
            ).json()
            bad = (
                await create(
                    client,
                    admin,
                    kind="sendgrid",
                    config=fake.config,
                    credentials={"api_key": "SG.no"},
                )
            ).json()
            ok = await connection_test(client, admin, good["id"])
            wrong = await connection_test(client, admin, bad["id"])
        assert ok["ok"] is True, ok
        assert wrong["ok"] is False
        assert "SG.no" not in wrong["detail"]

    async def test_deepgram_ok_and_wrong_key(self, client: AsyncClient) -> None:
        admin = await signup(client)
        with running_deepgram() as fake:
            good = (
                await create(
                    client, admin, kind="deepgram", config=fake.config, credentials=fake.creds
                )
            ).json()
            bad = (
                await create(
                    client,
                    admin,
                    kind="deepgram",
                    config=fake.config,
                    credentials={"api_key": "nope"},
                )
            ).json()
            ok = await connection_test(client, admin, good["id"])
            wrong = await connection_test(client, admin, bad["id"])
        assert ok["ok"] is True, ok
        assert "1 project" in ok["detail"]
        assert wrong == {"ok": False, "detail": "Deepgram rejected the credentials (HTTP 401)"}

    async def test_s3_keys_in_vault_and_the_bucket_checked(
        self, client: AsyncClient, settings: Settings, s3_server: EmbeddedSeaweedFS
    ) -> None:
        admin = await signup(client)
        endpoint = s3_server.endpoint_url.replace("127.0.0.1", FAKE_HOST)
        keys = {
            "access_key_id": s3_server.keys.access_key,
            "secret_access_key": s3_server.keys.secret_key,
        }

        async def s3(bucket: str, creds: dict[str, str]) -> Any:
            r = await create(
                client,
                admin,
                kind="s3",
                config={"endpoint_url": endpoint, "bucket": bucket, "prefix": "/calls/"},
                credentials=creds,
            )
            assert r.status_code == 201, r.text
            return r.json()

        good = await s3("recordings", keys)
        assert good["config"] == {
            "endpoint_url": endpoint,
            "bucket": "recordings",
            "prefix": "calls",
            "region": "us-east-1",
        }
        assert good["isMock"] is False
        assert sorted(good["credentialFields"]) == ["access_key_id", "secret_access_key"]
        assert s3_server.keys.secret_key not in row_text(settings, good["id"])
        ok = await connection_test(client, admin, good["id"])
        assert ok == {"ok": True, "detail": "Connected to S3: bucket recordings is readable"}
        nobucket = await connection_test(client, admin, (await s3("no-such-bucket", keys))["id"])
        assert nobucket == {
            "ok": False,
            "detail": "S3 storage has no bucket 'no-such-bucket' (HTTP 404)",
        }
        wrong = await s3("recordings", {**keys, "secret_access_key": "not-the-secret"})
        refused = await connection_test(client, admin, wrong["id"])
        assert refused == {"ok": False, "detail": "S3 storage rejected the credentials (HTTP 403)"}

    async def test_mock_stt_and_https_storage_take_no_credentials(
        self, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        stt = (await create(client, admin, kind="mock_stt")).json()
        assert stt["isMock"] is True and "mock" in stt["label"].lower()
        assert (await connection_test(client, admin, stt["id"]))["ok"] is True
        https = (await create(client, admin, kind="https")).json()
        assert https["isMock"] is False
        refused = await create(client, admin, kind="https", credentials={"api_key": "x"})
        assert refused.status_code == 422

    async def test_mock_is_always_ok(self, client: AsyncClient) -> None:
        admin = await signup(client)
        mock = (await create(client, admin, kind="mock")).json()
        assert (await connection_test(client, admin, mock["id"]))["ok"] is True

    async def test_unreachable_provider_is_not_ok(self, client: AsyncClient) -> None:
        admin = await signup(client)
        with running_openai() as fake:
            config, creds = fake.config, fake.creds
        # The fake has stopped: nothing listens on its port any more.
        gone = (await create(client, admin, kind="openai", config=config, credentials=creds)).json()
        result = await connection_test(client, admin, gone["id"])
        assert result["ok"] is False
        assert "Could not reach OpenAI" in result["detail"]


class TestProviderUrlGuard:
    """A base URL on a non-public address is refused before the provider SDK sends anything."""

    @pytest.mark.parametrize(
        ("kind", "key", "suffix", "credentials", "name"),
        [
            ("openai", "base_url", "/v1", {"api_key": "sk-x"}, "OpenAI"),
            ("twilio", "api_base_url", "", {"account_sid": "AC1", "auth_token": "t"}, "Twilio"),
            ("sendgrid", "base_url", "", {"api_key": "SG.x"}, "SendGrid"),
            ("deepgram", "base_url", "", {"api_key": "dg"}, "Deepgram"),
        ],
    )
    async def test_loopback_port_not_allow_listed_fails_and_is_never_called(
        self,
        client: AsyncClient,
        kind: str,
        key: str,
        suffix: str,
        credentials: dict[str, str],
        name: str,
    ) -> None:
        admin = await signup(client)
        with listening() as listener:
            created = await create(
                client,
                admin,
                kind=kind,
                config={key: f"http://127.0.0.1:{listener.port}{suffix}"},
                credentials=credentials,
            )
            assert created.status_code == 201, created.text
            result = await connection_test(client, admin, created.json()["id"])
            assert listener.connections() == 0
        assert result["ok"] is False
        detail = result["detail"]
        assert detail.startswith(f"{name} was not called: {key}: refusing to connect to 127.0.0.1")
        assert "loopback" in detail and "CXGEAR_PROVIDER_ALLOWED_HOSTS" in detail

    async def test_cloud_metadata_address_is_refused(self, client: AsyncClient) -> None:
        admin = await signup(client)
        created = await create(
            client,
            admin,
            kind="openai",
            config={"base_url": "http://169.254.169.254/latest/meta-data"},
            credentials={"api_key": "sk-x"},
        )
        result = await connection_test(client, admin, created.json()["id"])
        assert result["ok"] is False
        assert "169.254.169.254" in result["detail"] and "link-local" in result["detail"]


class TestPermissions:
    async def test_supervisor_reads_but_cannot_write(self, client: AsyncClient) -> None:
        admin = await signup(client)
        mock = (await create(client, admin, kind="mock")).json()
        user = await invite(client, admin, roles=["Supervisor"])
        supervisor = await as_user(client, user["email"])
        assert (await client.get(INTEGRATIONS, headers=supervisor.headers)).status_code == 200
        denied = [
            await create(client, supervisor, kind="mock"),
            await client.patch(
                f"{INTEGRATIONS}/{mock['id']}", json={"name": "x"}, headers=supervisor.headers
            ),
            await client.delete(f"{INTEGRATIONS}/{mock['id']}", headers=supervisor.headers),
            await client.post(f"{INTEGRATIONS}/{mock['id']}/test", headers=supervisor.headers),
        ]
        assert [r.status_code for r in denied] == [403] * 4
        agent = await as_user(client, (await invite(client, admin, roles=["Agent"]))["email"])
        assert (await client.get(INTEGRATIONS, headers=agent.headers)).status_code == 403
