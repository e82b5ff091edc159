"""Throttling: sign-in lockouts (per account and per address), sign-ups per address, public routes
per key from the plan. Windows end by moving the stored timestamps back, not by sleeping."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import text

from api.services.throttle import purge_expired, throttle_key
from infra.db import libpq_url
from infra.settings import Settings
from models.plan import PUBLIC_REQUESTS_PER_WINDOW, Plan
from tests.api.test_data_tables import get_table, imported
from tests.api.test_ingest import KEY_INGEST, webhook
from tests.builders import PASSWORD, Account, make_spinner, signup
from tests.conftest import make_settings

LOGIN = "/api/v1/auth/login"
SIGNUPS_PER_ADDRESS = 3
TRIAL_LIMIT = PUBLIC_REQUESTS_PER_WINDOW[Plan.trial]
_addresses = itertools.count(1)


@pytest.fixture(scope="module")
def settings(database_url: str, temporal_server: Any, openbao_server: Any) -> Settings:
    return make_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        vault_address=openbao_server.address,
        vault_token=openbao_server.token,
        signup_rate_limit=SIGNUPS_PER_ADDRESS,
        login_lockout=timedelta(minutes=1),
    )


@asynccontextmanager
async def client_from(app: FastAPI, ip: str | None = None) -> AsyncIterator[AsyncClient]:
    """A client at its own address (each test's failures and sign-ups count apart)."""
    n = next(_addresses)
    ip = ip or f"198.51.{n // 250}.{n % 250 + 1}"
    transport = ASGITransport(app=app, client=(ip, 40000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def new_account(app: FastAPI) -> Account:
    async with client_from(app) as c:
        return await signup(c)


async def sign_in(client: AsyncClient, email: str, password: str = PASSWORD) -> Response:
    return await client.post(
        LOGIN, json={"email": email, "password": password, "continueHere": True}
    )


def answer(r: Response) -> tuple[int, str, bool]:
    return r.status_code, r.json().get("errorCode", ""), "retry-after" in r.headers


def retry_after(r: Response) -> int:
    assert (r.status_code, r.json()["errorCode"]) == (429, "RATE_LIMITED"), r.text
    seconds = int(r.headers["retry-after"])
    assert r.json()["details"] == {"retryAfter": seconds}
    return seconds


def end_lock(settings: Settings, kind: str, value: str) -> None:
    with psycopg.connect(libpq_url(settings.database_url)) as conn:
        done = conn.execute(
            "update login_failure set locked_until = now() - interval '1 second'"
            " where key = %s and locked_until > now()",
            (throttle_key(settings, kind, value),),
        )
        assert done.rowcount == 1


WRONG = "Wrong-Horse-9-battery"


class TestSignIn:
    async def test_twenty_wrong_passwords_lock_the_account_until_the_window_ends(
        self, app: FastAPI, settings: Settings
    ) -> None:
        victim = await new_account(app)
        async with client_from(app) as attacker, client_from(app) as elsewhere:
            answers = [await sign_in(attacker, victim.email, WRONG) for _ in range(20)]
            assert [answer(r) for r in answers] == [(401, "INVALID_CREDENTIALS", False)] * 4 + [
                (429, "RATE_LIMITED", True)
            ] * 16
            assert 0 < retry_after(answers[-1]) <= 60
            # Locked means locked, for the right password too and from any address.
            assert 0 < retry_after(await sign_in(attacker, victim.email)) <= 60
            assert 0 < retry_after(await sign_in(elsewhere, victim.email.upper())) <= 60

            end_lock(settings, "login-account", victim.email)
            # The next lockout is twice as long.
            again = [await sign_in(attacker, victim.email, WRONG) for _ in range(5)]
            assert [r.status_code for r in again] == [401] * 4 + [429]
            assert 60 < retry_after(again[-1]) <= 120

            end_lock(settings, "login-account", victim.email)
            r = await sign_in(attacker, victim.email)
            assert r.status_code == 200, r.text

    async def test_an_unknown_email_gets_the_same_answers(self, app: FastAPI) -> None:
        known = await new_account(app)
        unknown = f"nobody-{known.email}"
        async with client_from(app) as one, client_from(app) as two:
            for_known = [await sign_in(one, known.email, WRONG) for _ in range(8)]
            for_unknown = [await sign_in(two, unknown, WRONG) for _ in range(8)]
        assert [answer(r) for r in for_known] == [answer(r) for r in for_unknown]
        assert for_known[-1].status_code == 429

        def words(r: Response) -> str:
            return re.sub(r"\d+", "N", r.json()["message"])

        assert [words(r) for r in for_known] == [words(r) for r in for_unknown]

    async def test_one_address_failing_on_many_accounts_is_locked(
        self, app: FastAPI, settings: Settings
    ) -> None:
        account = await new_account(app)
        async with client_from(app) as noisy, client_from(app) as other:
            answers = [
                await sign_in(noisy, f"guess-{i}@example.com", WRONG)
                for i in range(settings.login_ip_max_failures)
            ]
            assert [r.status_code for r in answers[:-1]] == [401] * (len(answers) - 1)
            retry_after(answers[-1])
            retry_after(await sign_in(noisy, account.email))
            assert (await sign_in(other, account.email)).status_code == 200

    async def test_a_successful_sign_in_clears_the_accounts_failures(self, app: FastAPI) -> None:
        account = await new_account(app)
        async with client_from(app) as c:
            for _ in range(2):
                fails = [await sign_in(c, account.email, WRONG) for _ in range(4)]
                assert [r.status_code for r in fails] == [401] * 4
                assert (await sign_in(c, account.email)).status_code == 200


class TestSignUp:
    async def test_sign_ups_per_address_are_limited_and_the_refused_one_creates_nothing(
        self, app: FastAPI
    ) -> None:
        async with client_from(app) as c, client_from(app) as other:
            for _ in range(SIGNUPS_PER_ADDRESS):
                await signup(c)
            refused_email = "refused-signup@example.com"
            r = await c.post(
                "/api/v1/auth/signup",
                json={
                    "fullName": "Rae Refused",
                    "organizationName": "Refused Org",
                    "email": refused_email,
                    "password": PASSWORD,
                },
            )
            assert 3500 < retry_after(r) <= 3600
            assert (await sign_in(other, refused_email)).status_code == 401
            assert (await signup(other, email=refused_email)).email == refused_email


class TestPublicRoutes:
    async def test_an_ingest_webhook_over_its_plan_limit_is_refused_and_changes_nothing(
        self, app: FastAPI
    ) -> None:
        async with client_from(app) as c:
            admin = await signup(c)
            table = await imported(c, admin, "name,phone\nAda,+14155550100\n")
            url = await webhook(c, admin, table["id"])
            one = {"records": [{"name": "R", "phone": "+14155550101"}]}
            for _ in range(TRIAL_LIMIT):
                assert (await c.post(url, json=one)).status_code == 200
            r = await c.post(url, json=one)
            assert 0 < retry_after(r) <= 60
            assert (await get_table(c, admin, table["id"]))["rowCount"] == 1 + TRIAL_LIMIT
            # Per token: another table's webhook is not affected.
            other = await imported(c, admin, "name,phone\nBea,+14155550102\n", name="other")
            assert (await c.post(await webhook(c, admin, other["id"]), json=one)).status_code == 200

    async def test_an_api_key_over_its_plan_limit_is_refused_on_ingest_and_trigger(
        self, app: FastAPI, settings: Settings
    ) -> None:
        async with client_from(app) as c:
            admin = await signup(c)
            table = await imported(c, admin, "name,phone\nAda,+14155550100\n")
            created = await c.post(
                "/api/v1/api-keys",
                json={"name": "machine", "scopes": ["ingest", "trigger"]},
                headers=admin.headers,
            )
            key = {"Authorization": f"Bearer {created.json()['secret']}"}
            one = {"dataTableId": table["id"], "records": [{"name": "R", "phone": "+14155550101"}]}
            for _ in range(TRIAL_LIMIT):
                assert (await c.post(KEY_INGEST, json=one, headers=key)).status_code == 200
            assert 0 < retry_after(await c.post(KEY_INGEST, json=one, headers=key)) <= 60
            assert (await get_table(c, admin, table["id"]))["rowCount"] == 1 + TRIAL_LIMIT

            spinner = await make_spinner(
                c,
                admin,
                project_id=table["projectId"],
                definition={"steps": [{"id": "t", "type": "tag", "disposition": "ok"}]},
            )
            r = await c.post(
                f"/api/v1/public/trigger/{spinner['id']}",
                json={"dataTableId": table["id"], "records": [one["records"][0]]},
                headers=key,
            )
            retry_after(r)
            jobs = await c.get(f"/api/v1/projects/{table['projectId']}/jobs", headers=admin.headers)
            assert jobs.json()["count"] == 0
            assert (await get_table(c, admin, table["id"]))["rowCount"] == 1 + TRIAL_LIMIT

            # The limit is the plan's: on pro the same key may go on in the same window.
            with psycopg.connect(libpq_url(settings.database_url)) as conn:
                conn.execute("update organization set plan = 'pro' where id = %s", (admin.org_id,))
            assert PUBLIC_REQUESTS_PER_WINDOW[Plan.pro] > TRIAL_LIMIT + 2
            assert (await c.post(KEY_INGEST, json=one, headers=key)).status_code == 200


class TestCleanup:
    async def test_expired_rows_are_purged_and_live_ones_kept(
        self, app: FastAPI, settings: Settings
    ) -> None:
        async with client_from(app) as c:
            await sign_in(c, "purge-old@example.com", WRONG)
            await sign_in(c, "purge-live@example.com", WRONG)
        old = throttle_key(settings, "login-account", "purge-old@example.com")
        live = throttle_key(settings, "login-account", "purge-live@example.com")
        async with app.state.engine.begin() as conn:
            await conn.execute(
                text("update login_failure set expires_at = now() - interval '1 s' where key = :k"),
                {"k": old},
            )
            assert await purge_expired(conn) >= 1
            left = (
                await conn.execute(
                    text("select key from login_failure where key = any(:keys)"),
                    {"keys": [old, live]},
                )
            ).all()
        assert [k for (k,) in left] == [live]
