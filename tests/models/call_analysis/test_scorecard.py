from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from models.call_analysis.evaluation import Evidence, TagResult
from models.call_analysis.scorecard import ScorecardDefinition, ScorecardSnapshot, band, score
from models.call_analysis.setup import Band, ProjectCallSetup
from models.call_analysis.tags import TagSetError


def snapshot(definition: dict[str, Any]) -> ScorecardSnapshot:
    d = ScorecardDefinition.model_validate(definition)
    return ScorecardSnapshot(
        scorecard_id=uuid.uuid4(), version=1, name="QA", questions=d.questions, bundles=d.bundles
    )


def hit(i: int) -> TagResult:
    return TagResult(
        hit=True, evidence=[Evidence(utterance_index=i, speaker=0, start=i, quote=f"u{i}")]
    )


CARD = {
    "questions": [
        {"id": "greet", "text": "Greeted the customer", "points": 10, "condition": "greeting"},
        {"id": "noapology", "text": "No apology needed", "points": 5, "condition": "not apology"},
        {"id": "name", "text": "Said their name", "bundleId": "intro"},
        {"id": "company", "text": "Said the company", "bundleId": "intro"},
    ],
    "bundles": [
        {
            "id": "intro",
            "name": "Introduction",
            "condition": "said_name and said_company",
            "points": 20,
        }
    ],
}


class TestScore:
    def test_points_evidence_and_bundle_scored_once(self) -> None:
        results = {
            "greeting": hit(0),
            "apology": hit(3),
            "said_name": hit(1),
            "said_company": hit(2),
        }
        r = score(snapshot(CARD), results)
        assert (r.total, r.max, r.percent) == (30, 35, 85.71)
        by_id = {q.question_id: q for q in r.questions}
        assert by_id["greet"].points == 10 and by_id["greet"].evidence[0].utterance_index == 0
        assert by_id["noapology"].points == 0 and by_id["noapology"].evidence == []
        # Both bundled questions show the bundle's result; its 20 points count once.
        assert by_id["name"].hit and by_id["company"].hit
        assert [e.utterance_index for e in by_id["name"].evidence] == [1, 2]
        assert [b.points for b in r.bundles] == [20]

    def test_bundle_fails_as_a_whole(self) -> None:
        r = score(snapshot(CARD), {"greeting": hit(0), "said_name": hit(1)})
        assert (r.total, r.max) == (15, 35)
        assert not any(q.hit for q in r.questions if q.bundle_id == "intro")

    def test_snapshot_unaffected_by_later_edits(self) -> None:
        snap = snapshot(CARD)
        stored = snap.model_dump(mode="json")
        edited = dict(
            CARD, questions=[dict(CARD["questions"][0], points=99), *CARD["questions"][1:]]
        )
        ScorecardDefinition.model_validate(edited)  # a new version elsewhere
        again = ScorecardSnapshot.model_validate(stored)
        assert (
            score(again, {"greeting": hit(0)}).total
            == score(snap, {"greeting": hit(0)}).total
            == 15
        )

    def test_unknown_tag_in_condition(self) -> None:
        with pytest.raises(TagSetError) as exc:
            ScorecardDefinition.model_validate(CARD).check_tags(["greeting", "apology"])
        assert exc.value.code == "TAG_UNKNOWN" and "said_name" in exc.value.message

    @pytest.mark.parametrize(
        "bad",
        [
            {"questions": [{"id": "q", "text": "t", "points": 1}]},
            {"questions": [{"id": "q", "text": "t", "bundleId": "nope"}]},
            {
                "questions": [
                    {"id": "q", "text": "t", "points": 3, "condition": "a", "bundleId": "b"}
                ],
                "bundles": [{"id": "b", "name": "B", "condition": "a", "points": 1}],
            },
            {
                "questions": [
                    {"id": "q", "text": "t", "condition": "a"},
                    {"id": "q", "text": "u", "condition": "a"},
                ]
            },
            {"questions": [{"id": "q", "text": "t", "condition": "a =="}]},
        ],
    )
    def test_bad_definitions_are_refused(self, bad: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            ScorecardDefinition.model_validate(bad)


class TestBand:
    SETUP = ProjectCallSetup.model_validate({"goodAtLeast": 80, "fairAtLeast": 50})

    @pytest.mark.parametrize(
        ("percent", "expected"),
        [
            (100, Band.good),
            (80, Band.good),
            (79.99, Band.fair),
            (50, Band.fair),
            (49, Band.poor),
            (None, None),
        ],
    )
    def test_thresholds(self, percent: float | None, expected: Band | None) -> None:
        assert band(percent, self.SETUP) == expected

    def test_good_must_exceed_fair(self) -> None:
        with pytest.raises(ValidationError, match="goodAtLeast"):
            ProjectCallSetup.model_validate({"goodAtLeast": 50, "fairAtLeast": 50})
