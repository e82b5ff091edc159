"""Console pages over ASGI: cookie sessions, CSRF, escaping, security headers, permissions."""

from __future__ import annotations

import re
import uuid
from typing import Any

from httpx import AsyncClient, Response

from tests.builders import (
    PASSWORD,
    Account,
    as_user,
    invite,
    make_spinner,
    make_table,
    project,
    signup,
)

SCRIPT = "<script>alert(1)</script>"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def browser_signup(client: AsyncClient, *, org: str = "Acme") -> str:
    """Signs up through the console's form; returns the email. The client keeps the cookies."""
    page = await client.get("/signup")
    email = f"web-{uuid.uuid4().hex[:10]}@example.com"
    r = await client.post(
        "/signup",
        data={
            "csrf": csrf_of(page.text),
            "full_name": "Web Admin",
            "organization_name": org,
            "email": email,
            "password": PASSWORD,
        },
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/"
    return email


class TestSessions:
    async def test_signup_sets_an_httponly_lax_cookie_and_opens_the_console(
        self, client: AsyncClient
    ) -> None:
        page = await client.get("/signup")
        assert page.status_code == 200
        email = f"web-{uuid.uuid4().hex[:10]}@example.com"
        r = await client.post(
            "/signup",
            data={
                "csrf": csrf_of(page.text),
                "full_name": "Web Admin",
                "organization_name": "Acme",
                "email": email,
                "password": PASSWORD,
            },
        )
        cookie = r.headers["set-cookie"]
        assert "cxgear_session=" in cookie
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain http in this test; https adds it
        projects = await client.get("/projects")
        assert projects.status_code == 200
        assert "Web Admin" in projects.text

    async def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(
        self, client: AsyncClient
    ) -> None:
        await browser_signup(client)
        r = await client.post("/projects", data={"name": "P", "type": "outreach"})
        assert r.status_code == 403
        assert "came from elsewhere" in r.text
        r = await client.post("/projects", data={"name": "P", "type": "outreach", "csrf": "0" * 64})
        assert r.status_code == 403
        assert "No projects yet" in (await client.get("/projects")).text

    async def test_the_api_accepts_the_cookie_but_unsafe_calls_need_the_csrf_header(
        self, client: AsyncClient
    ) -> None:
        await browser_signup(client)
        assert (await client.get("/api/v1/projects")).status_code == 200
        r = await client.post("/api/v1/projects", json={"name": "P", "type": "outreach"})
        assert r.status_code == 403
        assert r.json()["errorCode"] == "CSRF_FAILED"
        token = csrf_of((await client.get("/projects")).text)
        r = await client.post(
            "/api/v1/projects",
            json={"name": "P", "type": "outreach"},
            headers={"X-CSRF-Token": token},
        )
        assert r.status_code == 201

    async def test_signing_in_elsewhere_offers_continue_here_and_ends_the_first_session(
        self, client: AsyncClient
    ) -> None:
        email = await browser_signup(client)
        first_cookie = client.cookies["cxgear_session"]
        client.cookies.clear()
        page = await client.get("/signin")
        r = await client.post(
            "/signin",
            data={"csrf": csrf_of(page.text), "email": email, "password": PASSWORD},
            headers={"User-Agent": "Other browser"},
        )
        assert r.status_code == 409
        assert "You are signed in on another device" in r.text
        assert "Continue here" in r.text
        r = await client.post(
            "/signin",
            data={
                "csrf": csrf_of(r.text),
                "email": email,
                "password": PASSWORD,
                "continue_here": "true",
            },
            headers={"User-Agent": "Other browser"},
        )
        assert r.status_code == 303
        client.cookies.clear()
        client.cookies.set("cxgear_session", first_cookie)
        r = await client.get("/projects")
        assert r.status_code == 303
        assert r.headers["location"] == "/signin?ended=SESSION_REPLACED"
        banner = await client.get(r.headers["location"])
        assert "signed in on another device" in banner.text

    async def test_signing_out_ends_the_session(self, client: AsyncClient) -> None:
        await browser_signup(client)
        token = csrf_of((await client.get("/projects")).text)
        cookie = client.cookies["cxgear_session"]
        r = await client.post("/signout", data={"csrf": token})
        assert r.headers["location"] == "/signin?ended=SIGNED_OUT"
        r = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {cookie}"})
        assert r.json()["errorCode"] == "SESSION_REVOKED"


class TestPages:
    async def test_pages_carry_a_csp_without_inline_scripts(self, client: AsyncClient) -> None:
        r = await client.get("/signin")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "<script>" not in r.text  # scripts are files only

    async def test_values_are_escaped(self, client: AsyncClient) -> None:
        await browser_signup(client, org=SCRIPT)
        token = csrf_of((await client.get("/projects")).text)
        r = await client.post("/projects", data={"name": SCRIPT, "type": "outreach", "csrf": token})
        assert r.status_code == 303
        page = await client.get("/projects")
        assert SCRIPT not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text

    async def test_an_agent_sees_no_admin_links_and_gets_403(self, client: AsyncClient) -> None:
        admin = await signup(client)
        await project(client, admin)
        agent = await invite(client, admin, roles=["Agent"])
        client.cookies.set("cxgear_session", (await as_user(client, agent["email"])).token)
        page = await client.get("/projects")
        assert page.status_code == 200
        assert "/admin/users" not in page.text
        assert "New project" not in page.text
        for url in ("/admin/users", "/admin/vault"):
            r = await client.get(url)
            assert r.status_code == 403, url
            assert "Missing permission" in r.text


async def submit(client: AsyncClient, page_url: str, action: str, data: dict[str, Any]) -> Response:
    """Posts a console form the way a browser does: with the CSRF token of the page it is on."""
    token = csrf_of((await client.get(page_url)).text)
    return await client.post(action, data={**data, "csrf": token})


async def api_json(client: AsyncClient, path: str) -> Any:
    token = client.cookies["cxgear_session"]
    r = await client.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()


ADMIN_PAGES = [
    "/admin/roles",
    "/admin/api-keys",
    "/admin/integrations",
    "/admin/channels",
    "/admin/do-not-contact",
    "/usage",
]
ADMIN_FORMS = [
    ("/admin/api-keys", {"name": "k", "scopes": "ingest"}),
    ("/admin/integrations", {"kind": "mock", "name": "m"}),
    ("/admin/do-not-contact", {"address": "+14155550199"}),
]


class TestAdminPages:
    async def test_every_admin_page_renders_in_the_navigation(self, client: AsyncClient) -> None:
        await browser_signup(client)
        nav = (await client.get("/projects")).text
        for url in ADMIN_PAGES:
            assert f'href="{url}"' in nav, url
            r = await client.get(url)
            assert r.status_code == 200, (url, r.text[:300])
            assert "unsafe-inline" not in r.headers["content-security-policy"]

    async def test_an_agent_sees_none_of_them_and_gets_403(self, client: AsyncClient) -> None:
        admin = await signup(client)
        agent = await invite(client, admin, roles=["Agent"])
        client.cookies.set("cxgear_session", (await as_user(client, agent["email"])).token)
        nav = (await client.get("/projects")).text
        for url in ADMIN_PAGES:
            assert f'href="{url}"' not in nav, url
            r = await client.get(url)
            assert r.status_code == 403, url
            assert "Missing permission" in r.text

    async def test_forms_without_the_csrf_token_are_refused_and_change_nothing(
        self, client: AsyncClient
    ) -> None:
        await browser_signup(client)
        for action, data in ADMIN_FORMS:
            r = await client.post(action, data=data)
            assert r.status_code == 403, action
            assert "came from elsewhere" in r.text
        assert (await api_json(client, "/api-keys"))["count"] == 0
        assert (await api_json(client, "/integrations"))["count"] == 0
        assert (await api_json(client, "/do-not-contact"))["count"] == 0

    async def test_roles_extend_edit_and_delete(self, client: AsyncClient) -> None:
        await browser_signup(client)
        agent = next(r for r in (await api_json(client, "/roles"))["data"] if r["name"] == "Agent")
        r = await submit(
            client, "/admin/roles", f"/admin/roles/{agent['id']}/extend", {"name": SCRIPT}
        )
        assert r.status_code == 303, r.text
        role_url = r.headers["location"]
        page = await client.get(role_url)
        assert SCRIPT not in page.text and "&lt;script&gt;" in page.text
        r = await submit(
            client,
            role_url,
            role_url,
            {"name": "Helpers", "permissions": ["projects.read", "spinners.read"]},
        )
        assert r.status_code == 303
        role = await api_json(client, role_url.removeprefix("/admin"))
        assert role["name"] == "Helpers"
        assert role["permissions"] == ["projects.read", "spinners.read"]
        assert role["extendsId"] == agent["id"]
        # A taken name is shown on the form, not as an error page.
        r = await submit(client, role_url, role_url, {"name": "Agent"})
        assert r.status_code == 409
        assert "already exists" in r.text
        r = await submit(client, "/admin/roles", f"{role_url}/delete", {})
        assert r.status_code == 303
        names = [x["name"] for x in (await api_json(client, "/roles"))["data"]]
        assert "Helpers" not in names

    async def test_an_api_key_secret_is_shown_once_then_revoked(self, client: AsyncClient) -> None:
        await browser_signup(client)
        r = await submit(
            client, "/admin/api-keys", "/admin/api-keys", {"name": SCRIPT, "scopes": "trigger"}
        )
        assert r.status_code == 201, r.text
        secret = re.search(r'id="key-secret"[^>]*value="([^"]+)"', r.text)
        assert secret and secret.group(1).startswith("cxg_")
        assert SCRIPT not in r.text
        key = (await api_json(client, "/api-keys"))["data"][0]
        assert secret.group(1).startswith(key["prefix"])
        again = await client.get("/admin/api-keys")
        assert secret.group(1) not in again.text
        assert key["prefix"] in again.text
        r = await submit(client, "/admin/api-keys", f"/admin/api-keys/{key['id']}/revoke", {})
        assert r.status_code == 303
        assert (await api_json(client, "/api-keys"))["data"][0]["revokedAt"] is not None
        # No scope chosen: the API's validation answer is shown on the form.
        r = await submit(client, "/admin/api-keys", "/admin/api-keys", {"name": "none"})
        assert r.status_code == 422
        assert 'id="key-error"' in r.text

    async def test_integrations_add_and_test_connection(self, client: AsyncClient) -> None:
        await browser_signup(client)
        r = await submit(
            client, "/admin/integrations", "/admin/integrations", {"kind": "mock", "name": "Mocky"}
        )
        assert r.status_code == 303, r.text
        integration = (await api_json(client, "/integrations"))["data"][0]
        assert integration["name"] == "Mocky"
        r = await submit(
            client, "/admin/integrations", f"/admin/integrations/{integration['id']}/test", {}
        )
        assert r.status_code == 200
        assert "Connection test: OK" in r.text
        # Credentials the kind needs but the form left empty: refused inline, nothing stored.
        r = await submit(
            client,
            "/admin/integrations",
            "/admin/integrations",
            {"kind": "openai", "name": "LLM", "api_key": ""},
        )
        assert r.status_code == 422
        assert 'id="integration-error"' in r.text
        assert (await api_json(client, "/integrations"))["count"] == 1

    async def test_channels_add_and_toggle_the_sandbox(self, client: AsyncClient) -> None:
        await browser_signup(client)
        r = await submit(
            client,
            "/admin/integrations",
            "/admin/integrations",
            {"kind": "twilio", "name": "Tw", "account_sid": "AC1", "auth_token": "tok-secret"},
        )
        assert r.status_code == 303, r.text
        page = await client.get("/admin/integrations")
        assert "tok-secret" not in page.text and "auth_token ••••••" in page.text
        twilio = (await api_json(client, "/integrations"))["data"][0]
        form = {
            "kind": "sms",
            "name": "Texts",
            "integration_id": twilio["id"],
            "sender": "+1 415 555 0100",
            "sandbox": "true",
        }
        r = await submit(client, "/admin/channels", "/admin/channels", form)
        assert r.status_code == 303, r.text
        channel = (await api_json(client, "/channels"))["data"][0]
        assert channel["sandbox"] is True and channel["sender"] == "+14155550100"
        r = await submit(
            client,
            "/admin/channels",
            f"/admin/channels/{channel['id']}/sandbox",
            {"sandbox": "false"},
        )
        assert r.status_code == 303
        assert (await api_json(client, "/channels"))["data"][0]["sandbox"] is False
        assert "Use sandbox: Texts" in (await client.get("/admin/channels")).text
        r = await submit(
            client, "/admin/channels", "/admin/channels", {**form, "name": "Bad", "sender": "12"}
        )
        assert r.status_code == 422
        assert "E.164" in r.text

    async def test_do_not_contact_add_and_remove(self, client: AsyncClient) -> None:
        await browser_signup(client)
        url = "/admin/do-not-contact"
        r = await submit(client, url, url, {"address": "+1 415 555 0123", "source": SCRIPT})
        assert r.status_code == 303, r.text
        page = await client.get(url)
        assert "+14155550123" in page.text
        assert SCRIPT not in page.text and "&lt;script&gt;" in page.text
        r = await submit(client, url, f"{url}/remove", {"address": "+14155550123"})
        assert r.status_code == 303
        assert (await api_json(client, "/do-not-contact"))["count"] == 0
        r = await submit(client, url, f"{url}/remove", {"address": "+14155550123"})
        assert r.status_code == 404
        assert "not on the list" in r.text
        r = await submit(client, url, url, {"address": "not an address"})
        assert r.status_code == 422
        assert 'id="dnc-error"' in r.text

    async def test_usage_shows_the_meters_as_bars(self, client: AsyncClient) -> None:
        await browser_signup(client)
        await submit(client, "/projects", "/projects", {"name": "P", "type": "outreach"})
        page = await client.get("/usage")
        assert page.status_code == 200
        assert "trial plan" in page.text
        assert re.search(r'id="meter-projects" value="1" max="3"', page.text)
        assert 'id="meter-jobs" value="0" max="500"' in page.text
        assert 'id="usage-reset"' in page.text


def session_account(client: AsyncClient, email: str = "") -> Account:
    """The browser session as an API account, to build data through the API's own routes."""
    return Account(client.cookies["cxgear_session"], "", "", email)


LOG_STEPS = {"steps": [{"id": "hi", "type": "log", "message": "hi"}]}


class TestSpinnerAndTablePages:
    async def test_ingest_token_is_shown_once_and_rotation_retires_the_old_one(
        self, client: AsyncClient
    ) -> None:
        await browser_signup(client)
        me = session_account(client)
        p = await project(client, me)
        table = await make_table(client, me, project_id=p["id"], csv_text="name\nAda\n")
        url = f"/tables/{table['id']}"
        assert (await client.post(f"{url}/ingest-token", data={})).status_code == 403
        r = await submit(client, url, f"{url}/ingest-token", {})
        assert r.status_code == 201, r.text
        first = re.search(r'id="ingest-url"[^>]*value="([^"]+)"', r.text)
        assert first
        token = first.group(1).rsplit("/", 1)[1]
        ingest = f"/api/v1/public/data-tables/ingest/{token}"
        ok = await client.post(ingest, json={"records": [{"name": "Bo"}]})
        assert ok.status_code == 200, ok.text
        page = await client.get(url)
        assert token not in page.text and "Rotate ingest token" in page.text
        r = await submit(client, url, f"{url}/ingest-token", {})
        assert r.status_code == 201
        assert token not in r.text
        gone = await client.post(ingest, json={"records": [{"name": "Cy"}]})
        assert gone.status_code == 404

    async def test_schedules_create_pause_resume_delete(self, client: AsyncClient) -> None:
        await browser_signup(client)
        me = session_account(client)
        p = await project(client, me)
        table = await make_table(client, me, project_id=p["id"], csv_text="name\nAda\n")
        spinner = await make_spinner(
            client, me, project_id=p["id"], definition=LOG_STEPS, name=SCRIPT
        )
        url = f"/spinners/{spinner['id']}"
        page = await client.get(url)
        assert SCRIPT not in page.text
        form = {"table_id": table["id"], "cron": "0 9 * * *", "timezone": "Europe/Paris"}
        r = await submit(client, url, f"{url}/schedules", {**form, "cron": "every day"})
        assert r.status_code == 422
        assert "five fields" in r.text and 'id="schedule-error"' in r.text
        r = await submit(client, url, f"{url}/schedules", form)
        assert r.status_code == 303, r.text
        sched = (await api_json(client, f"/spinners/{spinner['id']}/schedules"))["data"][0]
        assert sched["cron"] == "0 9 * * *" and sched["timezone"] == "Europe/Paris"
        page = await client.get(url)
        assert "Europe/Paris" in page.text
        first_run = sched["nextRuns"][0]
        assert f'<time datetime="{first_run}">' in page.text
        for action, paused in (("pause", True), ("resume", False)):
            r = await submit(client, url, f"{url}/schedules/{sched['id']}/{action}", {})
            assert r.status_code == 303
            listed = (await api_json(client, f"/spinners/{spinner['id']}/schedules"))["data"]
            assert listed[0]["paused"] is paused
        r = await submit(client, url, f"{url}/schedules/{sched['id']}/delete", {})
        assert r.status_code == 303
        assert (await api_json(client, f"/spinners/{spinner['id']}/schedules"))["count"] == 0

    async def test_supporting_links_add_and_delete(self, client: AsyncClient) -> None:
        await browser_signup(client)
        me = session_account(client)
        p = await project(client, me)
        parent = await make_spinner(client, me, project_id=p["id"], definition=LOG_STEPS)
        child = await make_spinner(
            client, me, project_id=p["id"], definition=LOG_STEPS, name="Retry <b>me</b>"
        )
        draft = await make_spinner(
            client, me, project_id=p["id"], definition=LOG_STEPS, publish=False
        )
        url = f"/spinners/{parent['id']}"
        form = {
            "child_spinner_id": child["id"],
            "kind": "retry",
            "condition": 'disposition == "Retry"',
            "delay": "15m",
            "max_attempts": "2",
        }
        r = await submit(client, url, f"{url}/links", {**form, "child_spinner_id": draft["id"]})
        assert r.status_code == 422
        assert "no published version" in r.text
        r = await submit(client, url, f"{url}/links", form)
        assert r.status_code == 303, r.text
        link = (await api_json(client, f"/spinners/{parent['id']}/links"))["data"][0]
        assert link["childSpinnerId"] == child["id"] and link["maxAttempts"] == 2
        page = await client.get(url)
        assert "Retry &lt;b&gt;me&lt;/b&gt;" in page.text and "<b>me</b>" not in page.text
        r = await submit(client, url, f"{url}/links/{link['id']}/delete", {})
        assert r.status_code == 303
        assert (await api_json(client, f"/spinners/{parent['id']}/links"))["count"] == 0
