"""`cxgear login/logout`, projects, table rows and fields, API keys, orgs, and one-line errors,
against the API served by a real uvicorn."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from httpx import AsyncClient
from typer.testing import CliRunner

from cxgear.cli import app as cli
from infra.db import libpq_url
from infra.settings import Settings, get_settings
from tests.api.test_data_tables import live_api
from tests.builders import PASSWORD, Account, make_table, project, signup

runner = CliRunner()
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api_url(settings: Settings) -> Iterator[str]:
    with live_api(settings) as url:
        yield url


async def cx(
    *args: str, env: dict[str, str | None], stdin: str | None = None
) -> tuple[int, str, str]:
    # In a thread: the API answers from this process's event loop.
    result = await asyncio.to_thread(
        runner.invoke, cli, list(args), input=stdin, env={"COLUMNS": "250", **env}
    )
    return result.exit_code, result.stdout, result.stderr


def as_account(api_url: str, account: Account) -> dict[str, str | None]:
    return {"CXGEAR_API_URL": api_url, "CXGEAR_TOKEN": account.token}


class TestLogin:
    async def test_login_stores_a_private_session_used_by_commands_until_logout(
        self, client: AsyncClient, api_url: str, tmp_path: Path
    ) -> None:
        admin = await signup(client)
        env: dict[str, str | None] = {
            "XDG_CONFIG_HOME": str(tmp_path),
            "CXGEAR_TOKEN": None,
            "CXGEAR_API_URL": None,
        }
        code, out, err = await cx("projects", "list", env=env)
        assert code == 2 and err.strip().splitlines() == [err.strip()] and "cxgear login" in err
        # The account is signed in elsewhere (sign-up): refused in one line until asked to take over.
        login = ["login", "--email", admin.email, "--api-url", api_url]
        code, out, err = await cx(*login, env=env, stdin=PASSWORD + "\n")
        assert code == 1 and err.count("\n") == 1 and "SESSION_ACTIVE_ELSEWHERE" in err
        code, out, err = await cx(*login, env=env, stdin="wrong-password\n")
        assert code == 1 and "INVALID_CREDENTIALS" in err
        code, out, err = await cx(*login, "--continue-here", env=env, stdin=PASSWORD + "\n")
        assert code == 0, err
        session = tmp_path / "cxgear" / "session.json"
        assert stat.S_IMODE(session.stat().st_mode) == 0o600
        token = json.loads(session.read_text())["token"]
        assert PASSWORD not in session.read_text()
        made = await client.post(
            "/api/v1/projects",
            json={"name": "Signed in", "type": "outreach"},
            headers=admin.headers,
        )
        # The sign-up session was ended by --continue-here; the CLI's is the one that works.
        assert made.status_code == 401
        code, out, err = await cx("projects", "create", "Signed in", env=env)
        assert code == 0, err
        code, out, err = await cx("projects", "list", "--json", env=env)
        assert code == 0 and [p["name"] for p in json.loads(out)] == ["Signed in"]
        code, out, err = await cx("logout", env=env)
        assert code == 0 and "signed out" in out and not session.exists()
        me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401


class TestProjectsAndTables:
    async def test_projects_rows_paged_and_metadata_fields(
        self, client: AsyncClient, api_url: str
    ) -> None:
        admin = await signup(client)
        env = as_account(api_url, admin)
        code, out, err = await cx(
            "projects", "create", "Leads", "--timezone", "Europe/Paris", "--json", env=env
        )
        assert code == 0, err
        made = json.loads(out)
        assert made["name"] == "Leads" and made["timezone"] == "Europe/Paris"
        code, out, _ = await cx("projects", "list", env=env)
        assert code == 0 and made["id"] in out and "Europe/Paris" in out
        code, out, err = await cx("projects", "create", "Other", "--type", "nope", env=env)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("VALIDATION_ERROR") and "type" in err

        csv_text = "name,phone\n" + "".join(f"C{i},+1415555{i:04d}\n" for i in range(7))
        table = await make_table(client, admin, project_id=made["id"], csv_text=csv_text)
        code, out, _ = await cx("tables", "list", "-p", "Leads", "--json", env=env)
        assert code == 0 and [t["rowCount"] for t in json.loads(out)] == [7]
        code, out, err = await cx("tables", "rows", "-t", table["id"], "--limit", "5", env=env)
        assert code == 0, err
        assert "C4" in out and "C5" not in out and "5 of 7 rows; next page: --after" in out
        after = out.rsplit("--after", 1)[1].split()[0]
        code, out, _ = await cx(
            "tables", "rows", "-t", table["id"], "--after", after, "--json", env=env
        )
        page = json.loads(out)
        assert [r["data"]["name"] for r in page["data"]] == ["C5", "C6"]
        assert page["nextAfter"] is None

        code, out, err = await cx("tables", "fields", "-t", table["id"], "--set", "phone", env=env)
        assert code == 0, err
        r = await client.get(f"/api/v1/data-tables/{table['id']}", headers=admin.headers)
        assert r.json()["metadataFields"] == ["phone"]
        code, out, _ = await cx("tables", "fields", "-t", table["id"], "--json", env=env)
        assert json.loads(out) == {"metadataFields": ["phone"]}
        code, out, err = await cx("tables", "fields", "-t", table["id"], "--set", "nope", env=env)
        assert code == 1 and "'nope'" in err and len(err.strip().splitlines()) == 1


class TestApiKeys:
    async def test_secret_shown_once_then_listed_masked_and_revoked(
        self, client: AsyncClient, api_url: str
    ) -> None:
        admin = await signup(client)
        env = as_account(api_url, admin)
        code, out, err = await cx("api-keys", "create", "crm", "-s", "ingest", "--json", env=env)
        assert code == 0, err
        made = json.loads(out)
        assert made["secret"] and made["scopes"] == ["ingest"]
        code, out, _ = await cx("api-keys", "list", env=env)
        assert code == 0 and made["id"] in out and made["secret"] not in out
        code, out, _ = await cx("api-keys", "revoke", made["id"], env=env)
        assert code == 0 and "revoked" in out
        code, out, _ = await cx("api-keys", "list", "--json", env=env)
        assert json.loads(out)[0]["revokedAt"] is not None
        trigger = await client.post(
            "/api/v1/public/trigger/00000000-0000-0000-0000-000000000000",
            headers={"Authorization": f"Bearer {made['secret']}"},
            json={},
        )
        assert trigger.status_code == 401
        code, _, err = await cx("api-keys", "create", "bad", "-s", "admin", env=env)
        assert code == 1 and "VALIDATION_ERROR" in err and len(err.strip().splitlines()) == 1


class TestCallbackSecret:
    async def test_rotate_prints_only_the_secret_once_and_status_never_shows_it(
        self, client: AsyncClient, api_url: str
    ) -> None:
        admin = await signup(client)
        env = as_account(api_url, admin)
        code, out, err = await cx("callbacks", "secret", env=env)
        assert code == 0, err
        assert "no callback secret yet" in out and "rotate-secret" in out
        code, first, err = await cx("callbacks", "rotate-secret", env=env)
        assert code == 0, err
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+={0,2}\n", first), first
        assert "version 1" in err and "shown only now" in err and "whsec_" not in err
        code, second, err = await cx("callbacks", "rotate-secret", env=env)
        assert code == 0 and second != first
        assert "version 2" in err and "previous one verifies until" in err
        code, out, err = await cx("callbacks", "secret", env=env)
        assert code == 0 and "version 2" in out and "previous secret verifies until" in out
        assert "whsec_" not in out
        code, out, _ = await cx("callbacks", "secret", "--json", env=env)
        status = json.loads(out)
        assert status["version"] == 2 and status["previousValidUntil"] and "secret" not in status
        code, third, err = await cx("callbacks", "rotate-secret", "--immediate", env=env)
        assert code == 0 and "version 3" in err and "previous" not in err
        code, out, _ = await cx("callbacks", "secret", "--json", env=env)
        assert json.loads(out)["previousValidUntil"] is None
        # That the printed secret is the one the API verifies with is shown end to end by
        # tests/test_examples.py: the CRM stub signs with it and every callback is accepted.


class TestSpinnerErrors:
    async def test_export_of_a_new_spinner_and_invalid_apply_are_one_line(
        self, client: AsyncClient, api_url: str, tmp_path: Path
    ) -> None:
        admin = await signup(client)
        env = as_account(api_url, admin)
        p = await project(client, admin)
        r = await client.post(
            f"/api/v1/projects/{p['id']}/spinners", json={"name": "New"}, headers=admin.headers
        )
        assert r.status_code == 201, r.text
        code, out, err = await cx("spinners", "export", r.json()["id"], env=env)
        assert code == 0, err
        assert "name: New" in out and "Traceback" not in out + err
        bad = tmp_path / "bad.yml"
        bad.write_text("name: X\ndefinition:\n  steps:\n    - id: a\n      type: nope\n")
        code, out, err = await cx("spinners", "apply", str(bad), "--project", p["id"], env=env)
        assert code == 1 and "Traceback" not in out + err
        assert err.startswith("invalid spinner definition:") and err.count("\n") == 1


@pytest.fixture
def operator_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The operator's environment: the settings read from CXGEAR_* variables, not the test's."""
    monkeypatch.setenv("CXGEAR_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


class TestOrgs:
    async def test_set_plan_from_a_plans_file_is_enforced(
        self, client: AsyncClient, tmp_path: Path, settings: Settings, operator_env: None
    ) -> None:
        admin = await signup(client)
        plans = tmp_path / "plans.yml"
        plans.write_text("team:\n  projects: 1\ntrial:\n  projects: unlimited\n")
        env: dict[str, str | None] = {"CXGEAR_PLANS_FILE": str(plans)}
        os.environ["CXGEAR_PLANS_FILE"] = str(plans)
        get_settings.cache_clear()
        try:
            code, _, err = await cx("orgs", "set-plan", admin.org_id, "gold", env=env)
            assert code == 2 and "no plan 'gold'" in err and "team" in err
            code, out, err = await cx("orgs", "set-plan", admin.org_id, "team", env=env)
            assert code == 0, err
            assert "trial → team" in out
            code, out, _ = await cx("orgs", "list", "--json", env=env)
            assert {"id": admin.org_id, "plan": "team"}.items() <= next(
                o for o in json.loads(out) if o["id"] == admin.org_id
            ).items()
            first = await project(client, admin)
            assert first["id"]
            second = await client.post(
                "/api/v1/projects", json={"name": "Two", "type": "outreach"}, headers=admin.headers
            )
            assert second.status_code == 403 and second.json()["errorCode"] == "PLAN_LIMIT"
            assert "team plan allows 1 projects" in second.json()["message"]
        finally:
            del os.environ["CXGEAR_PLANS_FILE"]
        code, _, err = await cx("orgs", "set-plan", "No such org", "trial", env={})
        assert code == 2 and "no organization 'No such org'" in err
        with psycopg.connect(libpq_url(settings.database_url)) as conn:
            plan = conn.execute(
                "SELECT plan FROM organization WHERE id = %s", (admin.org_id,)
            ).fetchone()
        assert plan == ("team",)


class TestSettingsErrors:
    def _run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CXGEAR_")}
        return subprocess.run(
            [sys.executable, "-m", "cxgear", *args],
            cwd=REPO_ROOT,
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_comma_separated_lists_are_read(self) -> None:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            http_allowed_hosts="127.0.0.1:18080, crm.internal",  # type: ignore[arg-type]
            provider_rate_limits="llm=5,messaging=2.5",  # type: ignore[arg-type]
        )
        assert settings.http_allowed_hosts == ["127.0.0.1:18080", "crm.internal"]
        assert settings.provider_rate_limits == {"llm": 5.0, "messaging": 2.5}
        assert Settings(http_allowed_hosts='["a:1", "b"]').http_allowed_hosts == ["a:1", "b"]  # type: ignore[arg-type]

    def test_the_documented_form_of_the_allow_list_starts(self, tmp_path: Path) -> None:
        result = self._run(
            "orgs", "set-plan", "x", "nope", CXGEAR_HTTP_ALLOWED_HOSTS="127.0.0.1:18080"
        )
        # Settings were read fine; the command then refuses the unknown plan, in one line.
        assert result.returncode == 2 and result.stderr.startswith("no plan 'nope'"), result.stderr

    @pytest.mark.parametrize(
        ("name", "value", "expected"),
        [
            ("CXGEAR_JOB_WINDOW", "many", "invalid setting CXGEAR_JOB_WINDOW:"),
            ("CXGEAR_PROVIDER_RATE_LIMITS", "llm", "invalid setting CXGEAR_PROVIDER_RATE_LIMITS:"),
            ("CXGEAR_DEFAULT_PLAN", "gold", "CXGEAR_DEFAULT_PLAN 'gold' is not a plan"),
        ],
    )
    def test_a_bad_setting_is_one_line_naming_it(
        self, name: str, value: str, expected: str
    ) -> None:
        result = self._run("dev", **{name: value})
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr + result.stdout

    def test_a_self_hosted_install_signs_up_on_the_unlimited_plan(self) -> None:
        assert Settings(_env_file=None).default_plan == "unlimited"  # type: ignore[call-arg]
