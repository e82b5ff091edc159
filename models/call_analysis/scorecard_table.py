"""Scorecards of a project and their immutable published versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import (
    Name,
    PublicModel,
    created_field,
    id_field,
    jsonb_field,
    org_field,
)
from models.call_analysis.scorecard import Bundle, Question, ScorecardDefinition


class Scorecard(SQLModel, table=True):
    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    project_id: uuid.UUID = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    # The newest version; analyses use the project's scorecard with the latest publish.
    current_version: int = 1
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class ScorecardVersion(SQLModel, table=True):
    """Never updated: publishing writes a new row, so a snapshot id always means one content."""

    __tablename__ = "scorecard_version"
    __table_args__ = (
        UniqueConstraint("scorecard_id", "version", name="uq_scorecard_version_number"),
    )

    id: uuid.UUID = id_field()
    scorecard_id: uuid.UUID = Field(foreign_key="scorecard.id", ondelete="CASCADE")
    version: int
    definition: dict[str, Any] = jsonb_field(dict)
    created_by: uuid.UUID | None = Field(
        default=None, foreign_key="app_user.id", ondelete="SET NULL"
    )
    created_at: datetime = created_field()


class ScorecardCreate(ScorecardDefinition):
    name: Name


class ScorecardPublish(ScorecardDefinition):
    name: Name | None = None


class ScorecardVersionPublic(PublicModel):
    id: uuid.UUID
    version: int
    questions: list[Question]
    bundles: list[Bundle]
    created_at: datetime


class ScorecardPublic(PublicModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    current_version: int
    created_at: datetime
    updated_at: datetime
    current: ScorecardVersionPublic


class ScorecardsPublic(PublicModel):
    data: list[ScorecardPublic]
    count: int


class ScorecardVersionsPublic(PublicModel):
    data: list[ScorecardVersionPublic]
    count: int


def version_public(row: ScorecardVersion) -> ScorecardVersionPublic:
    definition = ScorecardDefinition.model_validate(row.definition)
    return ScorecardVersionPublic(
        id=row.id,
        version=row.version,
        questions=definition.questions,
        bundles=definition.bundles,
        created_at=row.created_at,
    )
