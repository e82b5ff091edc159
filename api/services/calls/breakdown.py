"""An analysed call's score breakdown with supervisors' overrides applied, originals kept."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AppError
from models.call_analysis.analysed_call import (
    AnalysedCall,
    OverridePublic,
    QuestionOverride,
    ScoreBreakdown,
    ScoredBundle,
    ScoredQuestion,
)
from models.call_analysis.scorecard import ScorecardSnapshot, ScoreResult, band, percent_of
from models.call_analysis.setup import ProjectCallSetup


async def overrides_of(session: AsyncSession, call_id: int) -> list[QuestionOverride]:
    return list(
        (
            await session.exec(
                select(QuestionOverride)
                .where(QuestionOverride.analysed_call_id == call_id)
                .order_by(col(QuestionOverride.id))
            )
        ).all()
    )


def latest(overrides: list[QuestionOverride]) -> dict[str, OverridePublic]:
    """The override that counts for each question: the newest."""
    return {o.question_id: OverridePublic.model_validate(o) for o in overrides}


def breakdown(call: AnalysedCall, overrides: list[QuestionOverride]) -> ScoreBreakdown:
    counted = latest(overrides)
    result = ScoreResult.model_validate(call.score_detail) if call.score_detail else None
    snapshot = (
        ScorecardSnapshot.model_validate(call.scorecard_snapshot)
        if call.scorecard_snapshot
        else None
    )
    questions = [
        ScoredQuestion(
            **q.model_dump(),
            override=counted.get(q.question_id),
            final_points=counted[q.question_id].points if q.question_id in counted else q.points,
        )
        for q in (result.questions if result else [])
    ]
    bundles = [
        ScoredBundle(
            **b.model_dump(),
            override=counted.get(b.bundle_id),
            final_points=counted[b.bundle_id].points if b.bundle_id in counted else b.points,
        )
        for b in (result.bundles if result else [])
    ]
    return ScoreBreakdown(
        scorecard_id=snapshot.scorecard_id if snapshot else None,
        scorecard_version=snapshot.version if snapshot else None,
        scorecard_name=snapshot.name if snapshot else None,
        questions=questions,
        bundles=bundles,
        score=call.score,
        max_score=call.max_score,
        percent=call.percent,
        band=call.band,
        final_score=call.final_score,
        final_percent=call.final_percent,
        final_band=call.final_band,
        overrides=[OverridePublic.model_validate(o) for o in overrides],
    )


def overridable_max(call: AnalysedCall, item_id: str) -> int:
    """The most points an override of this question or bundle may give."""
    if not call.score_detail:
        raise AppError("This call was analysed without a scorecard", "NOT_SCORED", 409)
    result = ScoreResult.model_validate(call.score_detail)
    for b in result.bundles:
        if b.bundle_id == item_id:
            return b.max_points
    for q in result.questions:
        if q.question_id == item_id:
            if q.bundle_id is not None:
                raise AppError(
                    f"Question '{item_id}' is scored by its bundle; override '{q.bundle_id}'",
                    "QUESTION_IN_BUNDLE",
                    422,
                )
            return q.max_points
    raise AppError(f"The scorecard has no question '{item_id}'", "QUESTION_UNKNOWN", 422)


def apply_overrides(
    call: AnalysedCall, overrides: list[QuestionOverride], setup: ProjectCallSetup
) -> None:
    """Recompute the call's final score, percent and band (what analytics read)."""
    result = ScoreResult.model_validate(call.score_detail)
    counted = latest(overrides)
    total = sum(
        counted[q.question_id].points if q.question_id in counted else q.points
        for q in result.questions
        if q.bundle_id is None
    ) + sum(
        counted[b.bundle_id].points if b.bundle_id in counted else b.points for b in result.bundles
    )
    call.final_score = total
    call.final_percent = percent_of(total, result.max)
    grade = band(call.final_percent, setup)
    call.final_band = grade.value if grade else None
