"""Analysed calls: filtered keyset listing, detail with transcript and evidence, overrides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlmodel import col, select

from api.deps import Allow, Principal, SessionDep, in_event_loop
from api.errors import AppError, not_found
from api.services.calls.breakdown import apply_overrides, breakdown, overridable_max, overrides_of
from api.services.calls.projects import AnalyticsProject, call_project
from models.call_analysis.analysed_call import (
    AnalysedCall,
    AnalysedCallPublic,
    AnalysedCallsPublic,
    AnalysedCallSummary,
    OverrideCreate,
    OverridePublic,
    QuestionOverride,
)
from models.call_analysis.setup import CallSetup, stored_setup
from models.call_analysis.tags import TAG_NAME_PATTERN
from models.fields import Cursor, DbId, SafeStr

router = APIRouter(tags=["call analysis"])
Read = Annotated[Principal, Allow("analytics.read")]
Qa = Annotated[Principal, Allow("pca.qa")]
MAX_PAGE = 200


@dataclass
class CallFilters:
    band: Annotated[str | None, Query(pattern="^(good|fair|poor)$")] = None
    tag: Annotated[str | None, Query(pattern=TAG_NAME_PATTERN)] = None
    agent: Annotated[SafeStr | None, Query(min_length=1, max_length=200)] = None
    # Days of the call (UTC), both included.
    from_: Annotated[date | None, Query(alias="from")] = None
    to: date | None = None
    after: Cursor | None = None
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


@router.get("/projects/{project_id}/analysed-calls")
async def list_analysed_calls(
    project: AnalyticsProject,
    session: SessionDep,
    f: Annotated[CallFilters, Depends(in_event_loop(CallFilters))],
) -> AnalysedCallsPublic:
    """Newest first; pass the previous page's `nextAfter` as `after` for the next one."""
    stmt = select(AnalysedCall).where(
        AnalysedCall.org_id == project.org_id, AnalysedCall.project_id == project.id
    )
    if f.band is not None:
        stmt = stmt.where(AnalysedCall.final_band == f.band)
    if f.tag is not None:
        stmt = stmt.where(col(AnalysedCall.hit_tags).contains([f.tag]))
    if f.agent is not None:
        stmt = stmt.where(AnalysedCall.agent == f.agent)
    if f.from_ is not None:
        stmt = stmt.where(col(AnalysedCall.occurred_at) >= _day_start(f.from_))
    if f.to is not None:
        stmt = stmt.where(col(AnalysedCall.occurred_at) < _day_start(f.to) + timedelta(days=1))
    if f.after is not None:
        stmt = stmt.where(col(AnalysedCall.id) < f.after)
    rows = (await session.exec(stmt.order_by(col(AnalysedCall.id).desc()).limit(f.limit))).all()
    return AnalysedCallsPublic(
        data=[AnalysedCallSummary.model_validate(r) for r in rows],
        next_after=rows[-1].id if len(rows) == f.limit else None,
    )


async def _call(session: SessionDep, call_id: int, principal: Principal) -> AnalysedCall:
    call = await session.get(AnalysedCall, call_id)
    if call is None or call.org_id != principal.org_id:
        raise not_found("Analysed call")
    return call


async def readable_call(
    analysed_call_id: DbId, principal: Read, session: SessionDep
) -> AnalysedCall:
    return await _call(session, analysed_call_id, principal)


async def reviewable_call(
    analysed_call_id: DbId, principal: Qa, session: SessionDep
) -> AnalysedCall:
    return await _call(session, analysed_call_id, principal)


# Dependencies, so another organization's id is a 404 before the body is even looked at.
ReadableCall = Annotated[AnalysedCall, Depends(readable_call)]
ReviewableCall = Annotated[AnalysedCall, Depends(reviewable_call)]


@router.get("/analysed-calls/{analysed_call_id}")
async def get_analysed_call(call: ReadableCall, session: SessionDep) -> AnalysedCallPublic:
    assert call.id is not None  # a stored row
    return AnalysedCallPublic.model_validate(
        {
            **AnalysedCallSummary.model_validate(call).model_dump(),
            "transcript": call.transcript,
            "tags": call.tags,
            "breakdown": breakdown(call, await overrides_of(session, call.id)),
            "summary": call.summary,
            "sttMs": call.stt_ms,
            "llmMs": call.llm_ms,
        }
    )


@router.post("/analysed-calls/{analysed_call_id}/overrides", status_code=201)
async def override_question(
    call: ReviewableCall, body: OverrideCreate, principal: Qa, session: SessionDep
) -> OverridePublic:
    """A supervisor's verdict on one question (or bundle); the original result is kept."""
    assert call.id is not None  # a stored row
    analysed_call_id = call.id
    project = await call_project(call.project_id, principal, session, lock=True)
    limit = overridable_max(call, body.question_id)
    if body.points > limit:
        raise AppError(
            f"'{body.question_id}' is worth at most {limit} points", "POINTS_TOO_HIGH", 422
        )
    row = QuestionOverride(
        org_id=call.org_id,
        analysed_call_id=analysed_call_id,
        question_id=body.question_id,
        points=body.points,
        reason=body.reason,
        user_id=principal.user.id,
    )
    session.add(row)
    await session.flush()
    apply_overrides(
        call,
        await overrides_of(session, analysed_call_id),
        stored_setup(
            setup.settings if (setup := await session.get(CallSetup, project.id)) else None
        ),
    )
    session.add(call)
    await session.flush()
    return OverridePublic.model_validate(row)
