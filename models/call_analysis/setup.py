"""A call_analyzer project's setup: which integrations it uses, the summary prompt, score bands."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import Field as PydField
from pydantic import model_validator
from sqlmodel import Field, SQLModel

from models.base import PublicModel, RequestBody, created_field, jsonb_field, org_field
from models.fields import SafeStr

DEFAULT_SUMMARY_PROMPT = (
    "Summarise this customer call in three sentences: why the customer called, what the agent "
    "did, and how the call ended."
)

Percent = Annotated[float, PydField(ge=0, le=100)]


class Band(StrEnum):
    good = "good"
    fair = "fair"
    poor = "poor"


class ProjectCallSetup(RequestBody):
    """What `PUT /projects/{id}/call-setup` takes; also the stored shape (JSONB)."""

    llm_integration_id: uuid.UUID | None = None
    stt_integration_id: uuid.UUID | None = None
    storage_integration_id: uuid.UUID | None = None
    summary_prompt: Annotated[SafeStr, PydField(min_length=1, max_length=4000)] = (
        DEFAULT_SUMMARY_PROMPT
    )
    good_at_least: Percent = 80.0
    fair_at_least: Percent = 60.0

    @model_validator(mode="after")
    def _bands_ordered(self) -> Self:
        if self.good_at_least <= self.fair_at_least:
            raise ValueError("goodAtLeast must be greater than fairAtLeast")
        return self


class CallSetup(SQLModel, table=True):
    """One row per call_analyzer project; absent means the defaults of ProjectCallSetup."""

    __tablename__ = "call_setup"

    project_id: uuid.UUID = Field(foreign_key="project.id", primary_key=True, ondelete="CASCADE")
    org_id: uuid.UUID = org_field()
    settings: dict[str, Any] = jsonb_field(dict)
    updated_at: datetime = created_field()


class CallSetupPublic(PublicModel):
    project_id: uuid.UUID
    llm_integration_id: uuid.UUID | None
    stt_integration_id: uuid.UUID | None
    storage_integration_id: uuid.UUID | None
    summary_prompt: str
    good_at_least: float
    fair_at_least: float
    # Whether the intake can run: STT, LLM and storage integrations are all chosen.
    complete: bool
    updated_at: datetime | None


def stored_setup(settings: dict[str, Any] | None) -> ProjectCallSetup:
    """The setup kept in JSONB (camelCase, as it was accepted), or the defaults."""
    return ProjectCallSetup.model_validate(settings or {})
