"""Console pages over ASGI: cookie sessions, CSRF, escaping, security headers, permissions."""

from __future__ import annotations

import re
import uuid

from httpx import AsyncClient

from tests.builders import PASSWORD, as_user, invite, project, signup

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
