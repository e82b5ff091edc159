from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from httpx import AsyncClient

from infra.settings import Settings
from tests.builders import Account, as_user, invite, signup

CHANNELS = "/api/v1/channels"


async def integration(client: AsyncClient, account: Account, kind: str) -> str:
    credentials: dict[str, Any] | None = {
        "twilio": {"account_sid": "AC1", "auth_token": "t"},
        "sendgrid": {"api_key": "SG.k"},
        "openai": {"api_key": "sk"},
        "mock": None,
    }[kind]
    body: dict[str, Any] = {"kind": kind, "name": f"{kind} {uuid.uuid4().hex[:6]}"}
    if credentials:
        body["credentials"] = credentials
    r = await client.post("/api/v1/integrations", json=body, headers=account.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def channel(
    client: AsyncClient,
    account: Account,
    *,
    kind: str,
    integration_id: str,
    sender: str,
    **extra: Any,
) -> Any:
    return await client.post(
        CHANNELS,
        json={
            "kind": kind,
            "name": extra.pop("name", f"{kind} {uuid.uuid4().hex[:6]}"),
            "integrationId": integration_id,
            "sender": sender,
            **extra,
        },
        headers=account.headers,
    )


class TestSenders:
    @pytest.mark.parametrize(
        ("given", "stored"),
        [
            ("+14155550100", "+14155550100"),
            ("+1 (415) 555-0100", "+14155550100"),
            ("whatsapp:+44 20 7946 0018", "+442079460018"),
        ],
    )
    async def test_phone_senders_are_normalised_to_e164(
        self, client: AsyncClient, given: str, stored: str
    ) -> None:
        admin = await signup(client)
        twilio = await integration(client, admin, "twilio")
        r = await channel(client, admin, kind="whatsapp", integration_id=twilio, sender=given)
        assert r.status_code == 201, r.text
        assert r.json()["sender"] == stored

    @pytest.mark.parametrize("sender", ["4155550100", "+1415", "+999 123", "call me", "a@b.co"])
    async def test_invalid_phone_senders_are_422(self, client: AsyncClient, sender: str) -> None:
        admin = await signup(client)
        twilio = await integration(client, admin, "twilio")
        r = await channel(client, admin, kind="sms", integration_id=twilio, sender=sender)
        assert r.status_code == 422, r.text
        assert r.json()["errorCode"] == "INVALID_SENDER"
        assert (await client.get(CHANNELS, headers=admin.headers)).json()["count"] == 0

    async def test_email_sender_and_name(self, client: AsyncClient) -> None:
        admin = await signup(client)
        sendgrid = await integration(client, admin, "sendgrid")
        r = await channel(
            client,
            admin,
            kind="email",
            integration_id=sendgrid,
            sender="Hello@Example.COM",
            senderName="Acme Support",
        )
        assert r.status_code == 201, r.text
        assert r.json()["sender"] == "hello@example.com"
        assert r.json()["senderName"] == "Acme Support"
        bad = await channel(client, admin, kind="email", integration_id=sendgrid, sender="nope")
        assert bad.status_code == 422
        assert bad.json()["errorCode"] == "INVALID_SENDER"

    async def test_update_revalidates_the_sender(self, client: AsyncClient) -> None:
        admin = await signup(client)
        twilio = await integration(client, admin, "twilio")
        created = (
            await channel(client, admin, kind="voice", integration_id=twilio, sender="+14155550100")
        ).json()
        bad = await client.patch(
            f"{CHANNELS}/{created['id']}", json={"sender": "12"}, headers=admin.headers
        )
        assert bad.status_code == 422
        good = await client.patch(
            f"{CHANNELS}/{created['id']}",
            json={"sender": "+1 415 555 0199", "sandbox": True},
            headers=admin.headers,
        )
        assert good.status_code == 200, good.text
        assert good.json()["sender"] == "+14155550199"
        assert good.json()["sandbox"] is True


class TestPairing:
    @pytest.mark.parametrize(
        ("kind", "integration_kind"),
        [("sms", "sendgrid"), ("whatsapp", "openai"), ("voice", "mock"), ("email", "twilio")],
    )
    async def test_wrong_integration_kind_is_422(
        self, client: AsyncClient, kind: str, integration_kind: str
    ) -> None:
        admin = await signup(client)
        other = await integration(client, admin, integration_kind)
        sender = "a@example.com" if kind == "email" else "+14155550100"
        r = await channel(client, admin, kind=kind, integration_id=other, sender=sender)
        assert r.status_code == 422, r.text
        assert r.json()["errorCode"] == "CHANNEL_INTEGRATION_MISMATCH"

    async def test_another_organizations_integration_is_refused(self, client: AsyncClient) -> None:
        admin = await signup(client)
        other = await signup(client)
        theirs = await integration(client, other, "twilio")
        r = await channel(client, admin, kind="sms", integration_id=theirs, sender="+14155550100")
        assert r.status_code == 422
        assert r.json()["errorCode"] == "INTEGRATION_NOT_FOUND"


class TestSandbox:
    async def test_sandbox_flag_is_stored_and_defaults_off(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        admin = await signup(client)
        twilio = await integration(client, admin, "twilio")
        live = (
            await channel(client, admin, kind="sms", integration_id=twilio, sender="+14155550100")
        ).json()
        sandbox = (
            await channel(
                client,
                admin,
                kind="sms",
                integration_id=twilio,
                sender="+14155550101",
                sandbox=True,
            )
        ).json()
        assert live["sandbox"] is False
        assert sandbox["sandbox"] is True
        with psycopg.connect(settings.database_url.replace("+psycopg", "")) as conn:
            rows: dict[str, bool] = dict(
                conn.execute(
                    "select id::text, sandbox from channel where id in (%s, %s)",
                    (live["id"], sandbox["id"]),
                ).fetchall()
            )
        assert rows == {live["id"]: False, sandbox["id"]: True}


class TestPlanLimit:
    async def test_trial_plan_allows_three_channels(self, client: AsyncClient) -> None:
        admin = await signup(client)
        twilio = await integration(client, admin, "twilio")
        for i in range(3):
            r = await channel(
                client, admin, kind="sms", integration_id=twilio, sender=f"+1415555010{i}"
            )
            assert r.status_code == 201, r.text
        over = await channel(
            client, admin, kind="sms", integration_id=twilio, sender="+14155550109"
        )
        assert over.status_code == 403
        assert over.json()["errorCode"] == "PLAN_LIMIT"
        first = (await client.get(CHANNELS, headers=admin.headers)).json()["data"][0]
        await client.delete(f"{CHANNELS}/{first['id']}", headers=admin.headers)
        again = await channel(
            client, admin, kind="sms", integration_id=twilio, sender="+14155550109"
        )
        assert again.status_code == 201, again.text


class TestAccess:
    async def test_names_are_unique_and_permissions_apply(self, client: AsyncClient) -> None:
        admin = await signup(client)
        twilio = await integration(client, admin, "twilio")
        first = await channel(
            client, admin, kind="sms", integration_id=twilio, sender="+14155550100", name="Main"
        )
        assert first.status_code == 201
        dup = await channel(
            client, admin, kind="sms", integration_id=twilio, sender="+14155550101", name="Main"
        )
        assert dup.status_code == 409
        assert dup.json()["errorCode"] == "NAME_TAKEN"
        supervisor = await as_user(
            client, (await invite(client, admin, roles=["Supervisor"]))["email"]
        )
        assert (await client.get(CHANNELS, headers=supervisor.headers)).json()["count"] == 1
        denied = await channel(
            client, supervisor, kind="sms", integration_id=twilio, sender="+14155550102"
        )
        assert denied.status_code == 403
