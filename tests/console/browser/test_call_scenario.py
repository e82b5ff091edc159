"""The Call Analyzer in headless Chromium: an admin sets up a call_analyzer project, adds a tag
and a scorecard, opens an analysed call with its evidence marked, overrides a question with a
reason and sees the analytics change."""

from __future__ import annotations

import asyncio
import secrets
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, expect

from infra.db import create_engine
from infra.settings import Settings
from models.call_analysis.evaluation import Utterance, evaluate_tags
from models.call_analysis.scorecard import band, score
from store.calls import NewAnalysedCall, load_call_config, save_analysed_call
from tests.console.browser.test_scenarios import serious_violations, shot, sign_up

LINES = ["Thank you for calling Acme.", "My card was declined.", "Let me fix that for you."]


async def _analysed_call(settings: Settings, org_id: str, project_id: str) -> int:
    """What the intake's apply_tags → qa_score → summarize steps store for one call."""
    utterances = [
        Utterance(speaker=i % 2, start=i * 4.0, end=i * 4.0 + 3, text=t)
        for i, t in enumerate(LINES)
    ]
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            config = await load_call_config(conn, uuid.UUID(project_id))
            assert config.scorecard is not None
            fields = {"agent": "ann", "direction": "inbound", "duration_s": 75}
            tags = evaluate_tags(config.tags, fields, utterances, {})
            result = score(config.scorecard, tags)
            grade = band(result.percent, config.setup)
            return await save_analysed_call(
                conn,
                NewAnalysedCall(
                    org_id=uuid.UUID(org_id),
                    project_id=uuid.UUID(project_id),
                    record_id=secrets.randbelow(10**15) + 1,
                    transcript=utterances,
                    tags=tags,
                    call_id="call-0001",
                    agent="ann",
                    direction="inbound",
                    started_at=datetime.now(UTC) - timedelta(minutes=5),
                    duration_s=75,
                    score=result,
                    band=grade.value if grade else None,
                    summary="A declined card, fixed on the call.",
                    scorecard_version_id=config.scorecard_version_id,
                    scorecard_snapshot=config.scorecard,
                ),
            )
    finally:
        await engine.dispose()


def analysed_call(settings: Settings, org_id: str, project_id: str) -> int:
    # Playwright's sync API owns this thread's event loop; the store runs in a thread of its own.
    found: list[int] = []
    worker = threading.Thread(
        target=lambda: found.append(asyncio.run(_analysed_call(settings, org_id, project_id)))
    )
    worker.start()
    worker.join(60)
    assert found, "the analysed call was not saved"
    return found[0]


def add_integration(page: Page, base: str, kind: str, name: str) -> None:
    page.goto(f"{base}/admin/integrations")
    page.get_by_label("Kind").select_option(kind)
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Add integration").click()
    expect(page.locator("#integrations")).to_contain_text(name)


class TestCallAnalyzer:
    def test_setup_tag_scorecard_evidence_override_and_analytics(
        self, page: Page, live_server: str, settings: Settings, output_path: str
    ) -> None:
        base = live_server
        sign_up(page, base)
        page.get_by_label("Name").fill("Support calls")
        page.get_by_label("Type").select_option("call_analyzer")
        page.get_by_role("button", name="Create project").click()
        expect(page.get_by_role("heading", name="Setup")).to_be_visible()
        project_id = page.url.split("/")[4]
        for kind, name in (("mock", "Mock LLM"), ("mock_stt", "Mock STT"), ("https", "Web")):
            add_integration(page, base, kind, name)

        page.goto(f"{base}/projects/{project_id}/calls/setup")
        expect(page.locator("#setup-state")).to_contain_text("Choose a language model")
        page.get_by_label("Language model").select_option(label="Mock LLM (mock)")
        page.get_by_label("Speech to text").select_option(label="Mock STT (mock)")
        page.get_by_label("Recording storage").select_option(label="Web")
        page.get_by_label("Good from").fill("50")
        page.get_by_label("Fair from").fill("60")
        page.get_by_role("button", name="Save setup").click()
        expect(page.locator("#setup-error")).to_contain_text("goodAtLeast must be greater")
        page.get_by_label("Good from").fill("80")
        page.get_by_role("button", name="Save setup").click()
        expect(page.locator("#setup-state")).to_contain_text("Setup is complete")
        assert serious_violations(page) == []

        page.get_by_role("link", name="Tags", exact=True).click()
        page.get_by_label("Name (lowercase").fill("greeting")
        page.get_by_label("Phrases, one per line").fill("thank you for calling")
        page.get_by_role("button", name="Create tag").click()
        expect(page.locator("#call-tags")).to_contain_text("thank you for calling")
        assert serious_violations(page) == []

        page.get_by_role("link", name="Scorecards", exact=True).click()
        page.get_by_label("Name", exact=True).fill("Support QA")
        for row, (qid, text, points, condition) in enumerate(
            (
                ("greet", "Greeted the caller", "40", "greeting"),
                ("solve", "Greeted twice", "60", "count.greeting >= 2"),
            ),
            start=1,
        ):
            page.get_by_label(f"Question {row} id").fill(qid)
            page.get_by_label(f"Question {row} text").fill(text)
            page.get_by_label(f"Question {row} points").fill(points)
            page.get_by_label(f"Question {row} condition").fill(condition)
        page.get_by_role("button", name="Create scorecard").click()
        expect(page.get_by_role("heading", name="Support QA")).to_be_visible()
        assert serious_violations(page) == []

        me = page.request.get(f"{base}/api/v1/auth/me").json()
        call_id = analysed_call(settings, me["organization"]["id"], project_id)

        page.get_by_role("link", name="Analytics", exact=True).click()
        expect(page.locator("#fig-calls")).to_have_text("1")
        expect(page.locator("#fig-poor")).to_have_text("1")
        expect(page.locator("#fig-average")).to_have_text("40.0%")
        assert serious_violations(page) == []

        page.get_by_role("link", name="Analysed calls", exact=True).click()
        assert serious_violations(page) == []
        page.get_by_role("link", name="call-0001").click()
        assert page.url.endswith(f"/calls/{call_id}")
        expect(page.locator("#u-0 mark")).to_have_text("Thank you for calling Acme.")
        expect(page.locator("#u-1 mark")).to_have_count(0)
        expect(page.locator("#u-0")).to_contain_text("evidence for greeting")
        expect(page.locator("#item-greet")).to_contain_text("40 / 40")
        assert serious_violations(page) == []
        page.get_by_label("Points for solve").fill("60")
        page.get_by_label("Reason for solve").fill("Resolved the decline on the call")
        page.get_by_role("button", name="Override solve").click()
        expect(page.locator("#override-saved")).to_be_visible()
        expect(page.locator("#item-solve .original")).to_have_text("0")
        expect(page.locator("#item-solve .final")).to_have_text("60")
        expect(page.locator("#item-solve")).to_contain_text("Resolved the decline on the call")
        expect(page.locator("#call-score")).to_contain_text("100 / 100")
        page.screenshot(path=str(Path(output_path) / "call-page.png"), full_page=True)

        page.get_by_role("link", name="Analytics", exact=True).click()
        expect(page.locator("#fig-good")).to_have_text("1")
        expect(page.locator("#fig-poor")).to_have_text("0")
        expect(page.locator("#fig-average")).to_have_text("100.0%")
        expect(page.locator("#daily-chart rect.volume")).to_have_count(31)
        assert serious_violations(page) == []
        shot(page, output_path)
