"""The Call Analyzer's console pages over ASGI: each renders for a permitted user and is in the
navigation, an Agent gets neither, forms carry CSRF, and the API's refusals are shown inline."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from tests.api.test_call_analysis import CARD, GOOD, POOR, TAGS, analyse
from tests.builders import Account, as_user, invite, signup
from tests.console.test_pages import SCRIPT, api_json, browser_signup, submit


async def call_project_in_console(client: AsyncClient, *, with_card: bool = True) -> str:
    """Creates a call_analyzer project through the console form, then its tags and scorecard
    through the API (the pages under test are the ones that read them)."""
    r = await submit(client, "/projects", "/projects", {"name": "Calls", "type": "call_analyzer"})
    assert r.status_code == 303, r.text
    project_id = r.headers["location"].split("/")[2]
    assert r.headers["location"] == f"/projects/{project_id}/calls/setup"
    token = client.cookies["cxgear_session"]
    headers = {"Authorization": f"Bearer {token}"}
    for tag in TAGS:
        r = await client.post(f"/api/v1/projects/{project_id}/call-tags", json=tag, headers=headers)
        assert r.status_code == 201, r.text
    if with_card:
        r = await client.post(
            f"/api/v1/projects/{project_id}/scorecards", json=CARD, headers=headers
        )
        assert r.status_code == 201, r.text
    return project_id


async def session_account(client: AsyncClient) -> Account:
    me = await api_json(client, "/auth/me")
    return Account(client.cookies["cxgear_session"], me["organization"]["id"], "", "")


def pages(project_id: str) -> list[str]:
    base = f"/projects/{project_id}/calls"
    return [f"{base}/setup", f"{base}/tags", f"{base}/scorecards", base, f"{base}/analytics"]


class TestAccess:
    async def test_every_page_renders_for_an_admin_and_is_in_the_navigation(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        await browser_signup(client)
        project_id = await call_project_in_console(client)
        call_id = await analyse(app, await session_account(client), project_id, GOOD)
        tag = (await api_json(client, f"/projects/{project_id}/call-tags"))["data"][0]
        card = (await api_json(client, f"/projects/{project_id}/scorecards"))["data"][0]
        nav = (await client.get(f"/projects/{project_id}/calls/setup")).text
        for url in pages(project_id):
            assert f'href="{url}"' in nav, url
        extra = [f"/calls/tags/{tag['id']}", f"/calls/scorecards/{card['id']}", f"/calls/{call_id}"]
        for url in [*pages(project_id), *extra]:
            r = await client.get(url)
            assert r.status_code == 200, (url, r.text[:300])
            assert "unsafe-inline" not in r.headers["content-security-policy"]

    async def test_an_agent_sees_none_of_them_and_gets_403(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        admin = await signup(client)
        r = await client.post(
            "/api/v1/projects", json={"name": "C", "type": "call_analyzer"}, headers=admin.headers
        )
        project_id = r.json()["id"]
        r = await client.post(
            f"/api/v1/projects/{project_id}/call-tags", json=TAGS[0], headers=admin.headers
        )
        tag_id = r.json()["id"]
        agent = await invite(client, admin, roles=["Agent"])
        client.cookies.set("cxgear_session", (await as_user(client, agent["email"])).token)
        nav = (await client.get(f"/projects/{project_id}/tables")).text
        assert 'href="/calls/analytics"' not in nav
        for url in [*pages(project_id), f"/calls/tags/{tag_id}", "/calls/analytics"]:
            assert f'href="{url}"' not in nav, url
            r = await client.get(url)
            assert r.status_code == 403, url
            assert "Missing permission" in r.text
        # Posting is refused as well, and the tag set is unchanged.
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', nav)
        assert token
        r = await client.post(
            f"/projects/{project_id}/calls/tags",
            data={"csrf": token.group(1), "name": "x", "kind": "bag_of_words", "phrases": "x"},
        )
        assert r.status_code == 403
        tags = await client.get(f"/api/v1/projects/{project_id}/call-tags", headers=admin.headers)
        assert tags.json()["count"] == 1

    async def test_an_outreach_project_has_no_call_pages(self, client: AsyncClient) -> None:
        await browser_signup(client)
        r = await submit(client, "/projects", "/projects", {"name": "O", "type": "outreach"})
        project_id = r.headers["location"].split("/")[2]
        page = await client.get(f"/projects/{project_id}/tables")
        assert "/calls/setup" not in page.text
        r = await client.get(f"/projects/{project_id}/calls/setup")
        assert r.status_code == 409
        assert "not a call analyzer project" in r.text


async def integration(client: AsyncClient, kind: str, name: str) -> str:
    r = await submit(
        client, "/admin/integrations", "/admin/integrations", {"kind": kind, "name": name}
    )
    assert r.status_code == 303, r.text
    found = (await api_json(client, "/integrations"))["data"]
    return str(next(i["id"] for i in found if i["name"] == name))


class TestSetup:
    async def test_choose_integrations_prompt_and_bands(self, client: AsyncClient) -> None:
        await browser_signup(client)
        project_id = await call_project_in_console(client, with_card=False)
        llm = await integration(client, "mock", "Mock LLM")
        stt = await integration(client, "mock_stt", "Mock STT")
        store = await integration(client, "https", "Web recordings")
        url = f"/projects/{project_id}/calls/setup"
        page = await client.get(url)
        assert "Choose a language model" in page.text
        # Only integrations of the role's kinds are offered.
        llm_select = re.search(r'<select id="setup-llm".*?</select>', page.text, re.S)
        assert llm_select and "Mock LLM" in llm_select.group(0)
        assert "Mock STT" not in llm_select.group(0)
        form = {
            "llm": llm,
            "stt": stt,
            "storage": store,
            "summary_prompt": "Summarise in one line.",
            "good_at_least": "50",
            "fair_at_least": "60",
        }
        r = await client.post(url, data=form)
        assert r.status_code == 403  # no CSRF token
        r = await submit(client, url, url, form)
        assert r.status_code == 422
        assert 'id="setup-error"' in r.text and "goodAtLeast must be greater" in r.text
        assert 'value="50"' in r.text  # the form keeps what was typed
        setup = await api_json(client, f"/projects/{project_id}/call-setup")
        assert setup["complete"] is False and setup["goodAtLeast"] == 80
        r = await submit(client, url, url, {**form, "good_at_least": "85"})
        assert r.status_code == 303, r.text
        setup = await api_json(client, f"/projects/{project_id}/call-setup")
        assert setup["complete"] is True
        assert setup["llmIntegrationId"] == llm and setup["storageIntegrationId"] == store
        assert (setup["goodAtLeast"], setup["fairAtLeast"]) == (85, 60)
        assert setup["summaryPrompt"] == "Summarise in one line."
        page = await client.get(r.headers["location"])
        assert "Setup is complete" in page.text
        assert f'<option value="{stt}" selected>' in page.text


class TestTags:
    async def test_create_edit_delete_and_refusals_inline(self, client: AsyncClient) -> None:
        await browser_signup(client)
        project_id = await call_project_in_console(client)
        url = f"/projects/{project_id}/calls/tags"
        form = {
            "name": "refund",
            "kind": "bag_of_words",
            "phrases": "refund\nmoney back\n",
            "speaker": "1",
            "min_count": "2",
        }
        r = await submit(client, url, url, form)
        assert r.status_code == 303, r.text
        tags = {
            t["name"]: t
            for t in (await api_json(client, url.replace("/calls/tags", "/call-tags")))["data"]
        }
        assert tags["refund"]["definition"]["phrases"] == ["refund", "money back"]
        assert tags["refund"]["definition"]["speaker"] == "1"
        assert tags["refund"]["definition"]["minCount"] == 2
        page = await client.get(url)
        assert "refund, money back · speaker 1 · at least 2×" in page.text
        # The four kinds, and the API's refusals on the form.
        for extra in (
            {
                "name": "asked_reason",
                "kind": "genai",
                "question": "Why did they call?",
                "mode": "extract",
            },
            {"name": "outbound", "kind": "metadata", "condition": 'direction == "outbound"'},
        ):
            assert (await submit(client, url, url, extra)).status_code == 303
        r = await submit(client, url, url, {"name": "loop", "kind": "derived", "condition": "loop"})
        assert r.status_code == 422
        assert 'id="tag-error"' in r.text and "cycle" in r.text
        r = await submit(
            client, url, url, {"name": "odd", "kind": "derived", "condition": "nosuch"}
        )
        assert r.status_code == 422 and "unknown tag(s): nosuch" in r.text
        r = await submit(client, url, url, {**form, "name": SCRIPT})
        assert r.status_code == 422 and SCRIPT not in r.text
        r = await submit(client, url, url, form)
        assert r.status_code == 409 and "already exists" in r.text
        count = (await api_json(client, f"/projects/{project_id}/call-tags"))["count"]
        assert count == len(TAGS) + 3
        # Edit, then delete; a tag the scorecard reads cannot be deleted.
        tag_url = f"/calls/tags/{tags['refund']['id']}"
        page = await client.get(tag_url)
        assert "refund\nmoney back</textarea>" in page.text
        r = await submit(
            client, tag_url, tag_url, {**form, "phrases": "reimburse", "min_count": "1"}
        )
        assert r.status_code == 303, r.text
        edited = await api_json(client, f"/call-tags/{tags['refund']['id']}")
        assert edited["definition"]["phrases"] == ["reimburse"]
        r = await submit(client, tag_url, f"{tag_url}/delete", {})
        assert r.status_code == 303
        greeting = tags["greeting"]["id"]
        r = await submit(client, f"/calls/tags/{greeting}", f"/calls/tags/{greeting}/delete", {})
        assert r.status_code == 409
        assert 'id="tag-delete-error"' in r.text
        assert (
            await client.get(
                f"/api/v1/call-tags/{greeting}",
                headers={"Authorization": f"Bearer {client.cookies['cxgear_session']}"},
            )
        ).status_code == 200


def card_form(
    name: str,
    questions: list[tuple[str, str, str, str, str]],
    bundles: list[tuple[str, str, str, str]],
) -> dict[str, Any]:
    return {
        "name": name,
        "q_id": [q[0] for q in questions],
        "q_text": [q[1] for q in questions],
        "q_points": [q[2] for q in questions],
        "q_condition": [q[3] for q in questions],
        "q_bundle": [q[4] for q in questions],
        "b_id": [b[0] for b in bundles],
        "b_name": [b[1] for b in bundles],
        "b_points": [b[2] for b in bundles],
        "b_condition": [b[3] for b in bundles],
    }


class TestScorecards:
    async def test_create_publish_versions_and_refusals(self, client: AsyncClient) -> None:
        await browser_signup(client)
        project_id = await call_project_in_console(client, with_card=False)
        url = f"/projects/{project_id}/calls/scorecards"
        questions = [
            ("greet", "Greeted", "40", "greeting", ""),
            ("own", "Owned it", "", "", "care"),
            ("", "", "", "", ""),  # a blank row is ignored
        ]
        bundles = [("care", "Care", "60", "recovered"), ("", "", "", "")]
        bad = card_form("QA", [("greet", "Greeted", "40", "nosuch", "")], [])
        r = await submit(client, url, url, bad)
        assert r.status_code == 422
        assert 'id="card-error"' in r.text and "unknown tag(s): nosuch" in r.text
        assert (await api_json(client, f"/projects/{project_id}/scorecards"))["count"] == 0
        r = await submit(client, url, url, card_form("QA", questions, bundles))
        assert r.status_code == 303, r.text
        card_url = r.headers["location"]
        card = (await api_json(client, f"/projects/{project_id}/scorecards"))["data"][0]
        assert card["current"]["questions"][1] == {
            "id": "own",
            "text": "Owned it",
            "points": 0,
            "condition": None,
            "bundleId": "care",
        }
        assert card["current"]["bundles"][0]["points"] == 60
        page = await client.get(card_url)
        assert "Publish version 2" in page.text and 'value="recovered"' in page.text
        changed = card_form(
            "QA v2", [*questions[:2], ("inb", "Inbound", "10", "inbound", "")], bundles
        )
        r = await submit(client, card_url, card_url, changed)
        assert r.status_code == 303, r.text
        page = await client.get(r.headers["location"])
        assert "Version 2 published" in page.text
        assert "Version 1 ·" in page.text and "Version 2 ·" in page.text
        versions = (await api_json(client, f"/scorecards/{card['id']}/versions"))["data"]
        assert [v["version"] for v in versions] == [2, 1]
        assert len(versions[0]["questions"]) == 3 and len(versions[1]["questions"]) == 2
        # A bundle no question uses: the model's message, on the form, no version 3.
        r = await submit(client, card_url, card_url, card_form("QA", questions[:1], bundles))
        assert r.status_code == 422 and "bundle(s) without questions: care" in r.text
        assert (await api_json(client, f"/scorecards/{card['id']}"))["currentVersion"] == 2


class TestAnalysedCalls:
    async def test_list_filters_detail_evidence_override_and_analytics(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        await browser_signup(client)
        project_id = await call_project_in_console(client)
        me = await session_account(client)
        good = await analyse(app, me, project_id, GOOD, agent="ann")
        poor = await analyse(app, me, project_id, [*POOR, SCRIPT], agent="bob", days_ago=2)
        base = f"/projects/{project_id}/calls"
        page = await client.get(base)
        assert f'href="/calls/{good}"' in page.text and f'href="/calls/{poor}"' in page.text
        page = await client.get(base, params={"band": "good"})
        assert f'href="/calls/{good}"' in page.text and f'href="/calls/{poor}"' not in page.text
        page = await client.get(base, params={"agent": "bob", "tag": "declined"})
        assert f'href="/calls/{poor}"' in page.text and f'href="/calls/{good}"' not in page.text
        today = (await api_json(client, f"/analysed-calls/{good}"))["startedAt"][:10]
        page = await client.get(base, params={"from": today})
        assert f'href="/calls/{good}"' in page.text and f'href="/calls/{poor}"' not in page.text
        r = await client.get(base, params={"from": "yesterday"})
        assert r.status_code == 422 and 'id="calls-error"' in r.text
        # The detail: transcript with speakers and times, evidence marked, the breakdown.
        page = await client.get(f"/calls/{good}")
        assert "<mark>Thank you for calling Acme.</mark>" in page.text
        assert "evidence for greeting" in page.text
        assert '<span class="at">0:04</span> <span class="speaker">Speaker 1</span>' in page.text
        assert "The caller&#39;s card was declined." in page.text
        assert "100 / 100" in page.text
        detail = await client.get(f"/calls/{poor}")
        assert SCRIPT not in detail.text and "&lt;script&gt;" in detail.text
        before = await api_json(client, f"/projects/{project_id}/call-analytics?days=7")
        assert before["bands"] == {"good": 1, "fair": 0, "poor": 1}
        # Override: points above the maximum are refused inline; a valid one keeps the original.
        url = f"/calls/{good}"
        r = await submit(
            client, url, f"{url}/overrides", {"question_id": "greet", "points": "99", "reason": "r"}
        )
        assert r.status_code == 422 and 'id="override-error"' in r.text and "at most 40" in r.text
        r = await submit(
            client, url, f"{url}/overrides", {"question_id": "greet", "points": "0", "reason": ""}
        )
        assert r.status_code == 422 and 'id="override-error"' in r.text
        r = await submit(
            client,
            url,
            f"{url}/overrides",
            {"question_id": "greet", "points": "0", "reason": "Greeting was rushed"},
        )
        assert r.status_code == 303, r.text
        page = await client.get(r.headers["location"])
        row = re.search(r'<tr id="item-greet">.*?</tr>', page.text, re.S)
        assert row
        assert '<s class="original">40</s> → <strong class="final">0</strong> / 40' in row.group(0)
        assert "Greeting was rushed" in row.group(0)
        assert "before overrides: 100 / 100" in page.text
        analytics = await client.get(f"{base}/analytics", params={"days": 7})
        assert analytics.status_code == 200
        assert '<p class="figure" id="fig-calls">2</p>' in analytics.text
        assert '<p class="figure" id="fig-fair">1</p>' in analytics.text
        assert '<p class="figure band-good-text" id="fig-good">0</p>' in analytics.text
        assert analytics.text.count('class="volume"') == 8  # every day of the window
        assert 'data-day="' + today + '"' in analytics.text
        assert re.search(r"<td><a [^>]*>bob</a></td><td>1</td>", analytics.text)

    async def test_analytics_across_projects(self, client: AsyncClient, app: FastAPI) -> None:
        await browser_signup(client)
        first = await call_project_in_console(client)
        second = await call_project_in_console(client)
        me = await session_account(client)
        await analyse(app, me, first, GOOD, agent="ann")
        await analyse(app, me, second, POOR, agent="bob")
        nav = (await client.get("/projects")).text
        assert 'href="/calls/analytics"' in nav
        page = await client.get("/calls/analytics", params={"days": 90})
        assert page.status_code == 200, page.text[:300]
        assert "all call analyzer projects" in page.text
        assert '<p class="figure" id="fig-calls">2</p>' in page.text
        assert "<td>ann</td><td>1</td>" in page.text and "<td>bob</td><td>1</td>" in page.text
        assert page.text.count('class="volume"') == 91

    async def test_analytics_windows_and_an_empty_project(self, client: AsyncClient) -> None:
        await browser_signup(client)
        project_id = await call_project_in_console(client)
        for days, bars in ((7, 8), (30, 31), (90, 91), (12, 8)):
            page = await client.get(
                f"/projects/{project_id}/calls/analytics", params={"days": days}
            )
            assert page.status_code == 200
            assert page.text.count('class="volume"') == bars, days
            assert '<p class="figure" id="fig-calls">0</p>' in page.text
            assert "No calls in this window." in page.text
        page = await client.get(f"/projects/{project_id}/calls")
        assert "No analysed calls." in page.text


class TestPaging:
    async def test_next_page_keeps_the_filters(self, client: AsyncClient, app: FastAPI) -> None:
        await browser_signup(client)
        project_id = await call_project_in_console(client)
        me = await session_account(client)
        ids = [await analyse(app, me, project_id, GOOD, agent="ann") for _ in range(51)]
        await analyse(app, me, project_id, GOOD, agent="cy")
        base = f"/projects/{project_id}/calls"
        first = await client.get(base, params={"agent": "ann"})
        assert len(re.findall(r'<td><a href="/calls/\d+"', first.text)) == 50
        assert f'href="/calls/{ids[0]}"' not in first.text  # newest first
        link = re.search(r'id="next-page" href="([^"]+)"', first.text)
        assert link
        second = await client.get(link.group(1).replace("&amp;", "&"))
        assert len(re.findall(r'<td><a href="/calls/\d+"', second.text)) == 1
        assert f'href="/calls/{ids[0]}"' in second.text
        assert 'id="next-page"' not in second.text and "First page" in second.text
