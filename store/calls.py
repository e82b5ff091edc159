"""The Call Analyzer's SQL shared by the API and the pipeline's activities: a project's analysis
configuration, and storing one analysed call (idempotent on the record, so a retried activity
writes it once)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from models.call_analysis.analysed_call import AnalysedCall
from models.call_analysis.evaluation import TagResult, Utterance
from models.call_analysis.scorecard import ScorecardDefinition, ScorecardSnapshot, ScoreResult
from models.call_analysis.scorecard_table import Scorecard, ScorecardVersion
from models.call_analysis.setup import CallSetup, ProjectCallSetup, stored_setup
from models.call_analysis.tags import AnyTag, CallTag, tag_from_json


@dataclass(frozen=True)
class CallConfig:
    """What one analysis of the project needs: setup, tags, the scorecard version to use."""

    setup: ProjectCallSetup
    tags: list[AnyTag]
    scorecard: ScorecardSnapshot | None
    scorecard_version_id: uuid.UUID | None


async def load_call_config(conn: AsyncConnection, project_id: uuid.UUID) -> CallConfig:
    setup_row = (
        await conn.execute(
            select(col(CallSetup.settings)).where(col(CallSetup.project_id) == project_id)
        )
    ).scalar_one_or_none()
    tag_rows = (
        await conn.execute(
            select(col(CallTag.definition))
            .where(col(CallTag.project_id) == project_id)
            .order_by(col(CallTag.name))
        )
    ).scalars()
    # The project's scorecard is the one published last.
    version = (
        await conn.execute(
            select(
                col(Scorecard.id),
                col(Scorecard.name),
                col(ScorecardVersion.id).label("version_id"),
                col(ScorecardVersion.version),
                col(ScorecardVersion.definition),
            )
            .join(
                ScorecardVersion,
                (col(ScorecardVersion.scorecard_id) == col(Scorecard.id))
                & (col(ScorecardVersion.version) == col(Scorecard.current_version)),
            )
            .where(col(Scorecard.project_id) == project_id)
            .order_by(col(Scorecard.updated_at).desc())
            .limit(1)
        )
    ).first()
    snapshot = None
    if version is not None:
        definition = ScorecardDefinition.model_validate(version.definition)
        snapshot = ScorecardSnapshot(
            scorecard_id=version.id,
            version=version.version,
            name=version.name,
            questions=definition.questions,
            bundles=definition.bundles,
        )
    return CallConfig(
        setup=stored_setup(setup_row),
        tags=[tag_from_json(d) for d in tag_rows],
        scorecard=snapshot,
        scorecard_version_id=version.version_id if version is not None else None,
    )


@dataclass(frozen=True)
class NewAnalysedCall:
    org_id: uuid.UUID
    project_id: uuid.UUID
    record_id: int
    transcript: list[Utterance]
    tags: dict[str, TagResult]
    job_id: uuid.UUID | None = None
    call_id: str | None = None
    agent: str | None = None
    direction: str | None = None
    started_at: datetime | None = None
    duration_s: float | None = None
    score: ScoreResult | None = None
    band: str | None = None
    summary: str | None = None
    scorecard_version_id: uuid.UUID | None = None
    scorecard_snapshot: ScorecardSnapshot | None = None
    stt_ms: int | None = None
    llm_ms: int | None = None
    analysed_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _row(new: NewAnalysedCall) -> dict[str, Any]:
    s = new.score
    return {
        "org_id": new.org_id,
        "project_id": new.project_id,
        "record_id": new.record_id,
        "job_id": new.job_id,
        "call_id": new.call_id,
        "agent": new.agent,
        "direction": new.direction,
        "started_at": new.started_at,
        "duration_s": new.duration_s,
        "occurred_at": new.started_at or new.analysed_at,
        "transcript": [u.model_dump(mode="json") for u in new.transcript],
        "tags": {n: r.model_dump(mode="json") for n, r in new.tags.items()},
        "hit_tags": sorted(n for n, r in new.tags.items() if r.hit),
        "score": s.total if s else None,
        "max_score": s.max if s else None,
        "percent": s.percent if s else None,
        "band": new.band,
        "final_score": s.total if s else None,
        "final_percent": s.percent if s else None,
        "final_band": new.band,
        "score_detail": s.model_dump(mode="json") if s else {},
        "summary": new.summary,
        "scorecard_version_id": new.scorecard_version_id,
        "scorecard_snapshot": (
            new.scorecard_snapshot.model_dump(mode="json") if new.scorecard_snapshot else None
        ),
        "stt_ms": new.stt_ms,
        "llm_ms": new.llm_ms,
        "analysed_at": new.analysed_at,
    }


async def save_analysed_call(conn: AsyncConnection, new: NewAnalysedCall) -> int:
    """The analysed call's id; a second save for the same record keeps the first result."""
    table = AnalysedCall.__table__  # type: ignore[attr-defined]
    inserted = (
        await conn.execute(
            insert(table)
            .values(**_row(new))
            .on_conflict_do_nothing(index_elements=["record_id"])
            .returning(table.c.id)
        )
    ).scalar_one_or_none()
    if inserted is not None:
        return int(inserted)
    existing = (
        await conn.execute(select(table.c.id).where(table.c.record_id == new.record_id))
    ).scalar_one()
    return int(existing)
