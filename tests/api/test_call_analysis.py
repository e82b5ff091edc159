"""The Call Analyzer's API: setup, tags, scorecards, analysed calls, overrides and analytics.

Analysed calls are written the way the pipeline's activity writes them: the project's config
from `store.calls.load_call_config`, tags and score from the pure evaluation functions, the row
through `store.calls.save_analysed_call`.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from models.call_analysis.evaluation import Utterance, evaluate_tags
from models.call_analysis.scorecard import band, score
from store.calls import NewAnalysedCall, load_call_config, save_analysed_call
from tests.builders import Account, as_user, invite, project, signup

TAGS: list[dict[str, Any]] = [
    {"kind": "bag_of_words", "name": "greeting", "phrases": ["thank you for calling"]},
    {"kind": "bag_of_words", "name": "apology", "phrases": ["sorry", "désolé"], "speaker": "0"},
    {"kind": "bag_of_words", "name": "declined", "phrases": ["declined"]},
    {"kind": "metadata", "name": "inbound", "condition": 'direction == "inbound"'},
    {"kind": "derived", "name": "recovered", "condition": "declined and apology"},
]
CARD: dict[str, Any] = {
    "name": "Support QA",
    "questions": [
        {"id": "greet", "text": "Greeted the caller", "points": 40, "condition": "greeting"},
        {"id": "own", "text": "Owned the problem", "bundleId": "care"},
        {"id": "fix", "text": "Handled the decline", "bundleId": "care"},
    ],
    "bundles": [{"id": "care", "name": "Care", "condition": "recovered", "points": 60}],
}
GOOD = ["Thank you for calling Acme.", "My card was declined.", "Désolé, let me fix that."]
FAIR = ["Thank you for calling.", "Hello?"]
POOR = ["Yes?", "My card was declined."]


def url(project_id: str, tail: str) -> str:
    return f"/api/v1/projects/{project_id}/{tail}"


async def call_project(client: AsyncClient, admin: Account) -> str:
    p = await project(client, admin, type="call_analyzer")
    for tag in TAGS:
        r = await client.post(url(p["id"], "call-tags"), json=tag, headers=admin.headers)
        assert r.status_code == 201, r.text
    r = await client.post(url(p["id"], "scorecards"), json=CARD, headers=admin.headers)
    assert r.status_code == 201, r.text
    return str(p["id"])


async def analyse(
    app: FastAPI,
    account: Account,
    project_id: str,
    lines: list[str],
    *,
    agent: str = "ann",
    days_ago: int = 0,
    direction: str = "inbound",
    record_id: int | None = None,
) -> int:
    """What the intake's apply_tags → qa_score → summarize steps store for one call."""
    # The agent (speaker 0) speaks first and third, the caller (1) second.
    utterances = [
        Utterance(speaker=1 if i == 1 else 0, start=i * 4.0, end=i * 4.0 + 3, text=t)
        for i, t in enumerate(lines)
    ]
    started = datetime.now(UTC) - timedelta(days=days_ago, minutes=5)
    async with app.state.engine.begin() as conn:
        config = await load_call_config(conn, uuid.UUID(project_id))
        fields = {"agent": agent, "direction": direction, "duration_s": 120}
        tags = evaluate_tags(config.tags, fields, utterances, {})
        assert config.scorecard is not None
        result = score(config.scorecard, tags)
        grade = band(result.percent, config.setup)
        return await save_analysed_call(
            conn,
            NewAnalysedCall(
                org_id=uuid.UUID(account.org_id),
                project_id=uuid.UUID(project_id),
                record_id=record_id or secrets.randbelow(10**15) + 1,
                transcript=utterances,
                tags=tags,
                call_id=f"call-{uuid.uuid4().hex[:8]}",
                agent=agent,
                direction=direction,
                started_at=started,
                duration_s=120,
                score=result,
                band=grade.value if grade else None,
                summary="The caller's card was declined.",
                scorecard_version_id=config.scorecard_version_id,
                scorecard_snapshot=config.scorecard,
                stt_ms=900,
                llm_ms=1200,
            ),
        )


class TestSetup:
    async def test_defaults_then_saved_setup(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin, type="call_analyzer")
        r = await client.get(url(p["id"], "call-setup"), headers=admin.headers)
        assert r.status_code == 200, r.text
        assert r.json()["complete"] is False and r.json()["goodAtLeast"] == 80
        r = await client.put(
            url(p["id"], "call-setup"),
            json={"goodAtLeast": 90, "fairAtLeast": 70, "summaryPrompt": "Two lines."},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
        got = (await client.get(url(p["id"], "call-setup"), headers=admin.headers)).json()
        assert (got["goodAtLeast"], got["fairAtLeast"], got["summaryPrompt"]) == (
            90,
            70,
            "Two lines.",
        )

    async def test_bad_setup_is_refused_and_changes_nothing(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin, type="call_analyzer")
        r = await client.put(
            url(p["id"], "call-setup"),
            json={"goodAtLeast": 50, "fairAtLeast": 60},
            headers=admin.headers,
        )
        assert r.status_code == 422 and r.json()["errorCode"] == "VALIDATION_ERROR"
        r = await client.put(
            url(p["id"], "call-setup"),
            json={"sttIntegrationId": str(uuid.uuid4())},
            headers=admin.headers,
        )
        assert r.status_code == 422 and r.json()["errorCode"] == "INTEGRATION_UNKNOWN"
        got = (await client.get(url(p["id"], "call-setup"), headers=admin.headers)).json()
        assert got["goodAtLeast"] == 80 and got["sttIntegrationId"] is None

    async def test_outreach_project_and_other_org(self, client: AsyncClient) -> None:
        admin, other = await signup(client), await signup(client)
        outreach = await project(client, admin)
        r = await client.get(url(outreach["id"], "call-tags"), headers=admin.headers)
        assert r.status_code == 409 and r.json()["errorCode"] == "PROJECT_TYPE"
        mine = await project(client, admin, type="call_analyzer")
        r = await client.get(url(mine["id"], "call-setup"), headers=other.headers)
        assert r.status_code == 404


class TestTags:
    async def test_crud_and_evaluable_set(self, client: AsyncClient) -> None:
        admin = await signup(client)
        project_id = await call_project(client, admin)
        listed = (await client.get(url(project_id, "call-tags"), headers=admin.headers)).json()
        assert [t["name"] for t in listed["data"]] == sorted(t["name"] for t in TAGS)
        by_name = {t["name"]: t for t in listed["data"]}
        assert by_name["apology"]["definition"]["speaker"] == "0"

        unknown = {"kind": "derived", "name": "angry", "condition": "shouting or declined"}
        r = await client.post(url(project_id, "call-tags"), json=unknown, headers=admin.headers)
        assert r.status_code == 422 and r.json()["errorCode"] == "TAG_UNKNOWN"
        assert "shouting" in r.json()["message"]

        loop = {"kind": "derived", "name": "loop", "condition": "recovered"}
        r = await client.post(url(project_id, "call-tags"), json=loop, headers=admin.headers)
        assert r.status_code == 201, r.text
        # recovered ← loop ← recovered: refused, and the stored tag stays as it was.
        cyclic = {"kind": "derived", "name": "recovered", "condition": "loop and apology"}
        tag_id = by_name["recovered"]["id"]
        r = await client.put(f"/api/v1/call-tags/{tag_id}", json=cyclic, headers=admin.headers)
        assert r.status_code == 422 and r.json()["errorCode"] == "TAG_CYCLE"
        got = await client.get(f"/api/v1/call-tags/{tag_id}", headers=admin.headers)
        assert got.json()["definition"]["condition"] == "declined and apology"

        r = await client.post(url(project_id, "call-tags"), json=TAGS[0], headers=admin.headers)
        assert r.status_code == 409 and r.json()["errorCode"] == "TAG_EXISTS"
        # Read by `loop` and by the scorecard's bundle.
        r = await client.delete(f"/api/v1/call-tags/{tag_id}", headers=admin.headers)
        assert r.status_code == 409 and r.json()["errorCode"] == "TAG_IN_USE"
        r = await client.delete(
            f"/api/v1/call-tags/{by_name['inbound']['id']}", headers=admin.headers
        )
        assert r.status_code == 204

    async def test_bad_definitions(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin, type="call_analyzer")
        for bad in (
            {"kind": "metadata", "name": "m", "condition": "agent && x"},
            {"kind": "tarot", "name": "t"},
            {"kind": "bag_of_words", "name": "Bad Name", "phrases": ["x"]},
            {"kind": "bag_of_words", "name": "b", "phrases": []},
            {"kind": "genai", "name": "g", "question": "?", "mode": "guess"},
        ):
            r = await client.post(url(p["id"], "call-tags"), json=bad, headers=admin.headers)
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["errorCode"] == "VALIDATION_ERROR"
        listed = (await client.get(url(p["id"], "call-tags"), headers=admin.headers)).json()
        assert listed["count"] == 0

    async def test_agent_cannot_edit_tags(self, client: AsyncClient) -> None:
        admin = await signup(client)
        p = await project(client, admin, type="call_analyzer")
        agent = await as_user(client, (await invite(client, admin, roles=["Agent"]))["email"])
        r = await client.post(url(p["id"], "call-tags"), json=TAGS[0], headers=agent.headers)
        assert r.status_code == 403


class TestScorecards:
    async def test_publish_versions(self, client: AsyncClient) -> None:
        admin = await signup(client)
        project_id = await call_project(client, admin)
        cards = (await client.get(url(project_id, "scorecards"), headers=admin.headers)).json()
        card = cards["data"][0]
        assert card["currentVersion"] == 1 and len(card["current"]["questions"]) == 3
        v2 = dict(CARD, name="Support QA v2")
        v2["questions"] = [dict(CARD["questions"][0], points=10), *CARD["questions"][1:]]
        r = await client.post(
            f"/api/v1/scorecards/{card['id']}/versions", json=v2, headers=admin.headers
        )
        assert r.status_code == 201, r.text
        assert r.json()["currentVersion"] == 2 and r.json()["name"] == "Support QA v2"
        versions = (
            await client.get(f"/api/v1/scorecards/{card['id']}/versions", headers=admin.headers)
        ).json()
        assert [v["version"] for v in versions["data"]] == [2, 1]
        assert versions["data"][1]["questions"][0]["points"] == 40

    async def test_unknown_tag_and_bad_bundle(self, client: AsyncClient) -> None:
        admin = await signup(client)
        project_id = await call_project(client, admin)
        ghost = dict(CARD, questions=[{"id": "q", "text": "t", "points": 1, "condition": "ghost"}])
        ghost["bundles"] = []
        r = await client.post(url(project_id, "scorecards"), json=ghost, headers=admin.headers)
        assert r.status_code == 422 and r.json()["errorCode"] == "TAG_UNKNOWN"
        stray = dict(CARD, bundles=[])
        r = await client.post(url(project_id, "scorecards"), json=stray, headers=admin.headers)
        assert r.status_code == 422 and "bundleId" in r.json()["message"]
        r = await client.get(f"/api/v1/scorecards/{uuid.uuid4()}", headers=admin.headers)
        assert r.status_code == 404


class TestAnalysedCalls:
    async def test_list_filters_detail_and_idempotent_save(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        admin = await signup(client)
        project_id = await call_project(client, admin)
        good = await analyse(app, admin, project_id, GOOD, agent="ann", record_id=None)
        fair = await analyse(app, admin, project_id, FAIR, agent="bob", days_ago=2)
        poor = await analyse(app, admin, project_id, POOR, agent="bob", days_ago=40)
        listing = await client.get(url(project_id, "analysed-calls"), headers=admin.headers)
        assert listing.status_code == 200, listing.text
        assert [c["id"] for c in listing.json()["data"]] == [poor, fair, good]
        bands = {c["id"]: c["finalBand"] for c in listing.json()["data"]}
        # 100/100, 40/100, 0/100 against bands 80 / 60.
        assert bands == {good: "good", fair: "poor", poor: "poor"}

        async def ids(**params: Any) -> list[int]:
            r = await client.get(
                url(project_id, "analysed-calls"), params=params, headers=admin.headers
            )
            assert r.status_code == 200, r.text
            return [c["id"] for c in r.json()["data"]]

        assert await ids(band="good") == [good]
        assert await ids(tag="declined") == [poor, good]
        assert await ids(agent="bob") == [poor, fair]
        day = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
        assert await ids(**{"from": day}) == [fair, good]
        assert await ids(to=day) == [poor]
        first = await client.get(
            url(project_id, "analysed-calls"), params={"limit": 2}, headers=admin.headers
        )
        assert first.json()["nextAfter"] == fair
        assert await ids(after=fair) == [good]

        detail = (await client.get(f"/api/v1/analysed-calls/{good}", headers=admin.headers)).json()
        assert [u["text"] for u in detail["transcript"]] == GOOD
        assert detail["transcript"][1]["speaker"] == 1 and detail["transcript"][1]["start"] == 4.0
        apology = detail["tags"]["apology"]
        assert apology["hit"] and apology["evidence"][0]["quote"] == GOOD[2]
        assert detail["tags"]["recovered"]["hit"]
        assert detail["breakdown"]["score"] == 100 and detail["breakdown"]["band"] == "good"
        care = detail["breakdown"]["bundles"][0]
        assert (care["bundleId"], care["points"]) == ("care", 60)
        assert [e["utteranceIndex"] for e in care["evidence"]] == [1, 2]
        assert detail["summary"] == "The caller's card was declined."

        # The activity retried: the record's first result stays, no second row.
        again = await analyse(app, admin, project_id, POOR, record_id=detail["recordId"])
        assert again == good
        assert len(await ids()) == 3

    async def test_override_changes_analytics_and_keeps_original(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        admin = await signup(client)
        project_id = await call_project(client, admin)
        good = await analyse(app, admin, project_id, GOOD, agent="ann")
        fair = await analyse(app, admin, project_id, FAIR, agent="bob", days_ago=1)
        await analyse(app, admin, project_id, POOR, agent="bob", days_ago=40)

        async def analytics(days: int = 30) -> dict[str, Any]:
            r = await client.get(
                url(project_id, "call-analytics"), params={"days": days}, headers=admin.headers
            )
            assert r.status_code == 200, r.text
            return dict(r.json())

        before = await analytics()
        assert before["calls"] == 2 and before["averagePercent"] == 70.0
        assert before["bands"] == {"good": 1, "fair": 0, "poor": 1}
        assert {a["agent"]: a["averagePercent"] for a in before["agents"]} == {
            "ann": 100.0,
            "bob": 40.0,
        }
        assert before["topTags"][0] == {"tag": "greeting", "calls": 2}
        assert sum(d["calls"] for d in before["daily"]) == 2
        assert (await analytics(90))["calls"] == 3

        r = await client.post(
            f"/api/v1/analysed-calls/{fair}/overrides",
            json={"questionId": "care", "points": 30, "reason": "Apologised in other words"},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        after = await analytics()
        assert after["averagePercent"] == 85.0
        assert after["bands"] == {"good": 1, "fair": 1, "poor": 0}
        detail = (await client.get(f"/api/v1/analysed-calls/{fair}", headers=admin.headers)).json()
        b = detail["breakdown"]
        assert (b["score"], b["band"], b["finalScore"], b["finalBand"]) == (40, "poor", 70, "fair")
        care = b["bundles"][0]
        assert (care["points"], care["finalPoints"]) == (0, 30)
        assert care["override"]["reason"] == "Apologised in other words"
        org_wide = (
            await client.get("/api/v1/call-analytics", params={"days": 7}, headers=admin.headers)
        ).json()
        assert org_wide["calls"] == 2 and org_wide["averagePercent"] == 85.0

        for bad, code in (
            ({"questionId": "own", "points": 1, "reason": "x"}, "QUESTION_IN_BUNDLE"),
            ({"questionId": "nope", "points": 1, "reason": "x"}, "QUESTION_UNKNOWN"),
            ({"questionId": "greet", "points": 41, "reason": "x"}, "POINTS_TOO_HIGH"),
            ({"questionId": "greet", "points": 1, "reason": ""}, "VALIDATION_ERROR"),
        ):
            r = await client.post(
                f"/api/v1/analysed-calls/{good}/overrides", json=bad, headers=admin.headers
            )
            assert r.status_code == 422 and r.json()["errorCode"] == code, r.text
        r = await client.get(
            url(project_id, "call-analytics"), params={"days": 14}, headers=admin.headers
        )
        assert r.status_code == 422

    async def test_scorecard_edit_leaves_stored_results(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        admin = await signup(client)
        project_id = await call_project(client, admin)
        before = await analyse(app, admin, project_id, FAIR)
        card = (await client.get(url(project_id, "scorecards"), headers=admin.headers)).json()
        v2 = dict(CARD)
        v2["questions"] = [dict(CARD["questions"][0], points=5), *CARD["questions"][1:]]
        r = await client.post(
            f"/api/v1/scorecards/{card['data'][0]['id']}/versions",
            json=v2,
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        after = await analyse(app, admin, project_id, FAIR)
        old = (await client.get(f"/api/v1/analysed-calls/{before}", headers=admin.headers)).json()
        new = (await client.get(f"/api/v1/analysed-calls/{after}", headers=admin.headers)).json()
        assert (old["breakdown"]["scorecardVersion"], old["breakdown"]["score"]) == (1, 40)
        assert old["breakdown"]["questions"][0]["maxPoints"] == 40
        assert (new["breakdown"]["scorecardVersion"], new["breakdown"]["score"]) == (2, 5)

    async def test_other_org_gets_404(self, client: AsyncClient, app: FastAPI) -> None:
        admin, other = await signup(client), await signup(client)
        project_id = await call_project(client, admin)
        call = await analyse(app, admin, project_id, GOOD)
        r = await client.get(f"/api/v1/analysed-calls/{call}", headers=other.headers)
        assert r.status_code == 404
        r = await client.post(
            f"/api/v1/analysed-calls/{call}/overrides",
            json={"questionId": "greet", "points": 0, "reason": "x"},
            headers=other.headers,
        )
        assert r.status_code == 404
        r = await client.get(url(project_id, "analysed-calls"), headers=other.headers)
        assert r.status_code == 404
        r = await client.get(url(project_id, "call-analytics"), headers=other.headers)
        assert r.status_code == 404
        theirs = (await client.get("/api/v1/call-analytics", headers=other.headers)).json()
        assert theirs["calls"] == 0
        r = await client.get(
            url(project_id, "analysed-calls"), params={"band": "great"}, headers=admin.headers
        )
        assert r.status_code == 422
