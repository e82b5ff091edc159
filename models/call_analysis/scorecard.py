"""QA scorecards: questions that award points when a condition over tags holds, bundles scored
once for all their questions, and the score of one call against a frozen snapshot."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Self

from pydantic import Field as PydField
from pydantic import model_validator

from models.base import PublicModel, RequestBody
from models.call_analysis.evaluation import Evidence, TagResult, holds, merged_evidence
from models.call_analysis.setup import Band, ProjectCallSetup
from models.call_analysis.tags import Condition, check_references, tag_references
from models.fields import Name, SafeStr
from models.spinner_language.expressions import compile_expression

ItemId = Annotated[str, PydField(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
Points = Annotated[int, PydField(ge=0, le=1000)]
MAX_QUESTIONS = 200


class Question(RequestBody):
    id: ItemId
    text: Annotated[SafeStr, PydField(min_length=1, max_length=1000)]
    # A bundled question takes its result (and its points) from its bundle.
    points: Points = 0
    condition: Condition | None = None
    bundle_id: ItemId | None = None

    @model_validator(mode="after")
    def _own_or_bundled(self) -> Self:
        if self.bundle_id is None and self.condition is None:
            raise ValueError(f"question '{self.id}' needs a condition or a bundleId")
        if self.bundle_id is not None and (self.condition is not None or self.points):
            raise ValueError(
                f"question '{self.id}' is in bundle '{self.bundle_id}': its condition and points"
                " are the bundle's"
            )
        return self


class Bundle(RequestBody):
    id: ItemId
    name: Name
    condition: Condition
    points: Points


class ScorecardDefinition(RequestBody):
    questions: Annotated[list[Question], PydField(min_length=1, max_length=MAX_QUESTIONS)]
    bundles: Annotated[list[Bundle], PydField(max_length=MAX_QUESTIONS)] = []

    @model_validator(mode="after")
    def _ids(self) -> Self:
        ids = [q.id for q in self.questions] + [b.id for b in self.bundles]
        if len(set(ids)) != len(ids):
            raise ValueError("question and bundle ids must be unique within a scorecard")
        bundles = {b.id for b in self.bundles}
        stray = sorted({q.bundle_id for q in self.questions if q.bundle_id} - bundles)
        if stray:
            raise ValueError(f"unknown bundleId: {', '.join(stray)}")
        empty = sorted(bundles - {q.bundle_id for q in self.questions})
        if empty:
            raise ValueError(f"bundle(s) without questions: {', '.join(empty)}")
        return self

    def check_tags(self, tag_names: list[str]) -> None:
        """TagSetError TAG_UNKNOWN for a condition naming a tag the project does not have."""
        for q in self.questions:
            if q.condition is not None:
                check_references(q.condition, tag_names, f"Question '{q.id}'")
        for b in self.bundles:
            check_references(b.condition, tag_names, f"Bundle '{b.id}'")


class ScorecardSnapshot(PublicModel):
    """The version an analysis was scored with, stored beside the result."""

    scorecard_id: uuid.UUID
    version: int
    name: str
    questions: list[Question]
    bundles: list[Bundle]


class QuestionScore(PublicModel):
    question_id: str
    text: str
    bundle_id: str | None
    hit: bool
    # For a bundled question: the bundle's points when it holds (awarded once, on the bundle).
    points: int
    max_points: int
    evidence: list[Evidence]


class BundleScore(PublicModel):
    bundle_id: str
    name: str
    hit: bool
    points: int
    max_points: int
    evidence: list[Evidence]


class ScoreResult(PublicModel):
    questions: list[QuestionScore]
    bundles: list[BundleScore]
    total: int
    max: int
    percent: float | None


def _judge(condition: str, results: Mapping[str, TagResult]) -> tuple[bool, list[Evidence]]:
    hit = holds(condition, results)
    names = tag_references(compile_expression(condition))
    return hit, merged_evidence(names, results) if hit else []


def percent_of(total: int, maximum: int) -> float | None:
    return round(100.0 * total / maximum, 2) if maximum else None


def score(snapshot: ScorecardSnapshot, tag_results: Mapping[str, TagResult]) -> ScoreResult:
    bundles: dict[str, BundleScore] = {}
    for b in snapshot.bundles:
        hit, evidence = _judge(b.condition, tag_results)
        bundles[b.id] = BundleScore(
            bundle_id=b.id,
            name=b.name,
            hit=hit,
            points=b.points if hit else 0,
            max_points=b.points,
            evidence=evidence,
        )
    questions: list[QuestionScore] = []
    for q in snapshot.questions:
        if q.bundle_id is not None:
            shared = bundles[q.bundle_id]
            hit, evidence, max_points = shared.hit, shared.evidence, shared.max_points
        else:
            assert q.condition is not None  # the model refuses a question with neither
            hit, evidence = _judge(q.condition, tag_results)
            max_points = q.points
        questions.append(
            QuestionScore(
                question_id=q.id,
                text=q.text,
                bundle_id=q.bundle_id,
                hit=hit,
                points=max_points if hit else 0,
                max_points=max_points,
                evidence=evidence,
            )
        )
    own = [q for q in questions if q.bundle_id is None]
    total = sum(q.points for q in own) + sum(b.points for b in bundles.values())
    maximum = sum(q.max_points for q in own) + sum(b.max_points for b in bundles.values())
    return ScoreResult(
        questions=questions,
        bundles=list(bundles.values()),
        total=total,
        max=maximum,
        percent=percent_of(total, maximum),
    )


def band(percent: float | None, setup: ProjectCallSetup) -> Band | None:
    """Good / Fair / Poor from a percentage; None when there is nothing to grade."""
    if percent is None:
        return None
    if percent >= setup.good_at_least:
        return Band.good
    if percent >= setup.fair_at_least:
        return Band.fair
    return Band.poor
