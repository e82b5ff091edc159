"""One analysed call per record, and the supervisors' overrides kept beside its result."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field as PydField
from sqlalchemy import BigInteger, Column, Identity, Index, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from models.base import PublicModel, RequestBody, created_field, jsonb_field, tz_field
from models.call_analysis.evaluation import TagResult, Utterance
from models.call_analysis.scorecard import BundleScore, ItemId, QuestionScore
from models.fields import SafeStr

ANALYTICS_COLUMNS = ["final_score", "final_percent", "final_band", "agent", "hit_tags"]


class AnalysedCall(SQLModel, table=True):
    """The stored result of one call's analysis. `final_*` are the figures after overrides (the
    originals until a supervisor overrides a question); analytics and filters read those."""

    __tablename__ = "analysed_call"
    __table_args__ = (
        Index("ix_analysed_call_project_id", "org_id", "project_id", "id"),
        # Covering indexes: the 7/30/90-day roll-ups read only the index.
        Index(
            "ix_analysed_call_project_day",
            "org_id",
            "project_id",
            "occurred_at",
            postgresql_include=ANALYTICS_COLUMNS,
        ),
        Index(
            "ix_analysed_call_org_day",
            "org_id",
            "occurred_at",
            postgresql_include=ANALYTICS_COLUMNS,
        ),
        Index("ix_analysed_call_hit_tags", "hit_tags", postgresql_using="gin"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    org_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    project_id: uuid.UUID = Field(foreign_key="project.id", ondelete="CASCADE")
    # No foreign key: an analysis outlives the retention of its record.
    record_id: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    job_id: uuid.UUID | None = None
    call_id: str | None = Field(default=None, max_length=200)
    agent: str | None = Field(default=None, max_length=200)
    direction: str | None = Field(default=None, max_length=32)
    started_at: datetime | None = tz_field()
    duration_s: float | None = None
    # The call's day for analytics: when it started, else when it was analysed.
    occurred_at: datetime = created_field()
    transcript: list[dict[str, Any]] = jsonb_field(list)
    tags: dict[str, Any] = jsonb_field(dict)
    # Names of the tags that hit: the tag filter and the top-tags roll-up read this (GIN).
    hit_tags: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    score: int | None = None
    max_score: int | None = None
    percent: float | None = None
    band: str | None = Field(default=None, max_length=8)
    final_score: int | None = None
    final_percent: float | None = None
    final_band: str | None = Field(default=None, max_length=8)
    # The scoring breakdown computed by qa_score (questions, bundles, evidence), never rewritten.
    score_detail: dict[str, Any] = jsonb_field(dict)
    summary: str | None = None
    scorecard_version_id: uuid.UUID | None = Field(
        default=None, foreign_key="scorecard_version.id", ondelete="SET NULL"
    )
    scorecard_snapshot: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    stt_ms: int | None = None
    llm_ms: int | None = None
    analysed_at: datetime = created_field()


class QuestionOverride(SQLModel, table=True):
    """A supervisor's verdict on one question (or bundle); the latest one per item counts."""

    __tablename__ = "question_override"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    org_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    analysed_call_id: int = Field(
        sa_type=BigInteger, foreign_key="analysed_call.id", index=True, ondelete="CASCADE"
    )
    question_id: str = Field(max_length=64)
    points: int
    reason: str = Field(max_length=2000)
    user_id: uuid.UUID | None = Field(default=None, foreign_key="app_user.id", ondelete="SET NULL")
    created_at: datetime = created_field()


class OverrideCreate(RequestBody):
    question_id: ItemId
    points: Annotated[int, PydField(ge=0, le=1000)]
    reason: Annotated[SafeStr, PydField(min_length=1, max_length=2000)]


class OverridePublic(PublicModel):
    id: int
    question_id: str
    points: int
    reason: str
    user_id: uuid.UUID | None
    created_at: datetime


class ScoredQuestion(QuestionScore):
    """A question as scored, with the override that now counts (if any)."""

    override: OverridePublic | None = None
    final_points: int


class ScoredBundle(BundleScore):
    override: OverridePublic | None = None
    final_points: int


class ScoreBreakdown(PublicModel):
    scorecard_id: uuid.UUID | None
    scorecard_version: int | None
    scorecard_name: str | None
    questions: list[ScoredQuestion]
    bundles: list[ScoredBundle]
    score: int | None
    max_score: int | None
    percent: float | None
    band: str | None
    final_score: int | None
    final_percent: float | None
    final_band: str | None
    overrides: list[OverridePublic]


class AnalysedCallSummary(PublicModel):
    id: int
    project_id: uuid.UUID
    record_id: int
    job_id: uuid.UUID | None
    call_id: str | None
    agent: str | None
    direction: str | None
    started_at: datetime | None
    duration_s: float | None
    hit_tags: list[str]
    score: int | None
    max_score: int | None
    percent: float | None
    band: str | None
    final_score: int | None
    final_percent: float | None
    final_band: str | None
    analysed_at: datetime


class AnalysedCallsPublic(PublicModel):
    data: list[AnalysedCallSummary]
    next_after: int | None


class AnalysedCallPublic(AnalysedCallSummary):
    transcript: list[Utterance]
    tags: dict[str, TagResult]
    breakdown: ScoreBreakdown
    summary: str | None
    stt_ms: int | None
    llm_ms: int | None
