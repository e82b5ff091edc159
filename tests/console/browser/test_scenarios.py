"""The console's five scenarios in headless Chromium, each from a fresh organization."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.builders import PASSWORD

SERIOUS = {"serious", "critical"}


def serious_violations(page: Page) -> list[str]:
    results = Axe().run(page)
    return [
        f"{v['id']}: {v['help']}"
        for v in results.response["violations"]
        if v.get("impact") in SERIOUS
    ]


def sign_up(page: Page, base: str, *, org: str = "Acme") -> str:
    email = f"web-{uuid.uuid4().hex[:10]}@example.com"
    page.goto(f"{base}/signup")
    page.get_by_label("Your name").fill("Ada Admin")
    page.get_by_label("Organization").fill(org)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    return email


def sign_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def create_project(page: Page, name: str = "Outreach") -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Data tables")).to_be_visible()


def create_table_with(page: Page, csv: str, name: str = "Contacts") -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create data table").click()
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "contacts.csv", "mimeType": "text/csv", "buffer": csv.encode()}]
    )
    page.get_by_role("button", name="Upload").click()


def contacts(n: int) -> str:
    lines = ["name,phone,city,notes"]
    lines += [f"Person {i},+1555{i:07d},City {i % 10},note {i}" for i in range(n)]
    return "\n".join(lines) + "\n"


def shot(page: Page, output_path: Path | str) -> None:
    page.screenshot(path=str(Path(output_path) / "last-page.png"), full_page=True)


class TestConsole:
    def test_sign_up_create_project_import_csv_choose_fields_see_rows(
        self, page: Page, live_server: str, output_path: str
    ) -> None:
        sign_up(page, live_server)
        assert serious_violations(page) == []
        create_project(page)
        create_table_with(page, contacts(2000))
        expect(page.locator("#upload-ok")).to_contain_text("Loaded 2000 rows")
        expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
        # A file whose header differs is refused inline, and nothing is added.
        page.get_by_role("link", name="Show the data").click()
        page.get_by_label("CSV file").set_input_files(
            files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": b"email\nx@y.z\n"}]
        )
        page.get_by_role("button", name="Upload").click()
        expect(page.locator("#upload-error")).to_be_visible()
        page.get_by_label("name").check()
        page.get_by_label("city").check()
        page.get_by_role("button", name="Save metadata fields").click()
        expect(page.get_by_text("Metadata fields saved.")).to_be_visible()
        expect(page.get_by_label("name")).to_be_checked()
        expect(page.get_by_label("phone")).not_to_be_checked()
        expect(page.locator("#rows tbody tr")).to_have_count(50)
        expect(page.locator("#rows tbody tr").first).to_contain_text("Person 0")
        page.get_by_role("link", name="Next page").click()
        expect(page.locator("#rows tbody tr").first).to_contain_text("Person 50")
        assert serious_violations(page) == []
        shot(page, output_path)

    def test_spinner_error_located_then_publish_graph_run_progress_journey(
        self, page: Page, live_server: str, output_path: str
    ) -> None:
        sign_up(page, live_server)
        create_project(page)
        create_table_with(page, contacts(30))
        expect(page.locator("#upload-ok")).to_be_visible()
        page.get_by_role("link", name="Spinners").click()
        page.get_by_label("Name").fill("Greeter <script>alert(1)</script>")
        page.get_by_role("button", name="Create spinner").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Greeter <script>alert(1)</script>"
        )
        editor = page.get_by_role("textbox", name="Steps")
        editor.fill(
            "steps:\n  - id: hello\n    type: log\n    message: Hello {{name}}\n    next: nowhere\n"
        )
        expect(page.locator("#issues")).to_contain_text("on line 5")
        editor.fill(
            "steps:\n"
            "  - id: hello\n"
            "    type: log\n"
            "    message: Hello {{name}}\n"
            "    next: route\n"
            "  - id: route\n"
            "    type: decision\n"
            "    branches:\n"
            "      - when: city == 'City 1'\n"
            "        label: first city\n"
            "        next: linger\n"
            "    default: done\n"
            "  - id: linger\n"
            "    type: wait\n"
            "    duration: 5s\n"
            "    next: done\n"
            "  - id: done\n"
            "    type: tag\n"
            "    disposition: Greeted\n"
        )
        expect(page.locator("#issues")).to_contain_text("No problems found")
        assert serious_violations(page) == []
        page.get_by_role("button", name="Publish").click()
        expect(page.locator("#published")).to_contain_text("Published version 1")
        graph = page.locator("#spinner-graph")
        expect(graph.locator("g.step")).to_have_count(4)
        expect(graph).to_contain_text("first city")
        assert serious_violations(page) == []  # with the schedule and link forms shown
        page.get_by_role("button", name="Run now").click()
        expect(page.locator("#job-percent")).to_be_visible()
        assert page.locator("#job-percent").text_content() != "100%"  # as the page was served
        # The three 'City 1' records wait 5 s, so the live bar must show a value between 0 and
        # 100 (pushed by the shared progress poll) before it reaches 100%.
        expect(page.locator("#job-percent")).to_have_text(
            re.compile(r"^[1-9][0-9]?%$"), timeout=60_000
        )
        expect(page.locator("#job-percent")).to_have_text("100%", timeout=60_000)
        expect(page.locator("#job-status")).to_have_text("completed")
        expect(page.locator("#count-completed")).to_have_text("30")
        assert serious_violations(page) == []
        page.get_by_role("link", name="#", exact=False).first.click()
        expect(page.get_by_role("heading", name="Journey")).to_be_visible()
        expect(page.locator("#journey li").first).to_be_visible(timeout=30_000)
        expect(page.locator("#journey")).to_contain_text("hello")
        expect(page.get_by_role("link", name="Open in Temporal UI")).to_have_attribute(
            "href", re.compile(r".*/workflows/rec-\d+$")
        )
        shot(page, output_path)

    def test_signing_in_elsewhere_takes_over_and_the_first_browser_is_told(
        self, browser: Browser, live_server: str, output_path: str
    ) -> None:
        first_ctx = browser.new_context(user_agent="First browser")
        first = first_ctx.new_page()
        email = sign_up(first, live_server)
        second_ctx = browser.new_context(user_agent="Second browser")
        second = second_ctx.new_page()
        sign_in(second, live_server, email)
        expect(
            second.get_by_role("heading", name="You are signed in on another device")
        ).to_be_visible()
        expect(second.locator("#elsewhere-device")).to_have_text("First browser")
        expect(second.locator("#elsewhere-ip")).to_have_text("127.0.0.1")
        second.get_by_label("Password").fill(PASSWORD)
        second.get_by_role("button", name="Continue here").click()
        expect(second.get_by_role("heading", name="Projects")).to_be_visible()
        first.reload()
        expect(first.locator("#session-banner")).to_contain_text(
            "because you signed in on another device"
        )
        shot(first, output_path)
        first_ctx.close()
        second_ctx.close()

    def test_an_agent_sees_no_admin_pages_and_gets_403_on_them(
        self, browser: Browser, live_server: str, output_path: str
    ) -> None:
        admin_ctx = browser.new_context()
        admin = admin_ctx.new_page()
        sign_up(admin, live_server)
        admin.get_by_role("link", name="Users").click()
        agent_email = f"agent-{uuid.uuid4().hex[:8]}@example.com"
        admin.get_by_label("Name").fill("Andy Agent")
        admin.get_by_label("Email").fill(agent_email)
        admin.get_by_label("Temporary password").fill(PASSWORD)
        admin.get_by_label("Agent").check()
        admin.get_by_role("button", name="Invite").click()
        expect(admin.locator("#users-table")).to_contain_text(agent_email)
        assert serious_violations(admin) == []
        admin_ctx.close()

        agent = browser.new_context().new_page()
        sign_in(agent, live_server, agent_email)
        # Invited with a temporary password: the console asks for a new one before anything else.
        expect(agent.locator("#password-banner")).to_be_visible()
        agent.get_by_label("Current password").fill(PASSWORD)
        agent.get_by_label("New password").fill(f"Agents-Own-{uuid.uuid4().hex[:6]}")
        agent.get_by_role("button", name="Change password").click()
        expect(agent.get_by_role("heading", name="Projects")).to_be_visible()
        expect(agent.get_by_role("link", name="Users")).to_have_count(0)
        expect(agent.get_by_role("link", name="Vault secrets")).to_have_count(0)
        for path in ("/admin/users", "/admin/vault"):
            response = agent.goto(f"{live_server}{path}")
            assert response is not None and response.status == 403
            expect(agent.get_by_role("heading", name="Not allowed")).to_be_visible()
        shot(agent, output_path)

    def test_a_vault_secret_is_never_shown_again_and_is_audited(
        self, page: Page, live_server: str, output_path: str
    ) -> None:
        sign_up(page, live_server)
        page.get_by_role("link", name="Vault secrets").click()
        secret_value = f"sk-{uuid.uuid4().hex}"
        page.get_by_label("Name").fill("openai_key")
        page.get_by_label("Value").fill(secret_value)
        page.get_by_role("button", name="Save secret").click()
        expect(page.locator("#secret-saved")).to_be_visible()
        expect(page.locator("#secrets")).to_contain_text("openai_key")
        expect(page.locator("#audit")).to_contain_text("create")
        expect(page.locator("#audit")).to_contain_text("openai_key")
        assert secret_value not in page.content()
        assert serious_violations(page) == []
        # The other admin pages, each with something on it, pass axe too.
        page.get_by_role("link", name="API keys").click()
        page.get_by_label("Name").fill("CRM sync")
        page.get_by_label("ingest").check()
        page.get_by_role("button", name="Create API key").click()
        expect(page.get_by_label("Secret")).to_have_value(re.compile(r"^cxg_"))
        assert serious_violations(page) == []
        page.get_by_role("link", name="Roles").click()
        page.get_by_label("New role from Agent").fill("Senior agent")
        page.get_by_role("button", name="Extend Agent").click()
        expect(page.get_by_role("heading", name="Role Senior agent")).to_be_visible()
        assert serious_violations(page) == []
        page.get_by_role("link", name="Integrations").click()
        page.get_by_label("Kind").select_option("twilio")
        page.get_by_label("Name").fill("Twilio")
        page.get_by_label("Account SID (Twilio)").fill("AC123")
        page.get_by_label("Auth token (Twilio)").fill("token-value")
        page.get_by_role("button", name="Add integration").click()
        expect(page.locator("#integrations")).to_contain_text("Twilio")
        assert serious_violations(page) == []
        page.get_by_role("link", name="Channels").click()
        page.get_by_label("Name", exact=True).fill("Texts")
        page.get_by_label("Sender (E.164").fill("+14155550100")
        page.get_by_label("Sandbox").check()
        page.get_by_role("button", name="Add channel").click()
        expect(page.locator("#channels")).to_contain_text("+14155550100")
        assert serious_violations(page) == []
        page.get_by_role("link", name="Do not contact").click()
        page.get_by_label("Phone (E.164) or email address").fill("stop@example.com")
        page.get_by_role("button", name="Add to the list").click()
        expect(page.locator("#dnc")).to_contain_text("stop@example.com")
        assert serious_violations(page) == []
        page.get_by_role("link", name="Usage").click()
        expect(page.locator("#meter-api_keys")).to_have_attribute("value", "1")
        assert serious_violations(page) == []
        shot(page, output_path)
