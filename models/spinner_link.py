"""Links from a parent spinner to a supporting (child) spinner: retry on a condition, or callback."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import Field as PydField
from pydantic import field_validator, model_validator
from sqlmodel import Field, SQLModel

from models.base import PublicModel, RequestBody, created_field, id_field, org_field
from models.spinner_language.durations import parse_duration
from models.spinner_language.expressions import ExpressionError, compile_expression

MAX_LINK_ATTEMPTS = 10


class LinkKind(StrEnum):
    retry = "retry"
    callback = "callback"


class SpinnerLinkBase(SQLModel):
    kind: str = Field(max_length=16)
    # Retry only: evaluated on the finished record's outputs and metadata, e.g. disposition == "Retry".
    condition: str | None = Field(default=None, max_length=1000)
    # Durable wait before the child starts ("2s", "15m", "PT1H").
    delay: str | None = Field(default=None, max_length=32)
    max_attempts: int = 1
    # Callback only: start the child only for payloads whose "event" field equals this.
    event: str | None = Field(default=None, max_length=200)


class SpinnerLink(SpinnerLinkBase, table=True):
    __tablename__ = "spinner_link"

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    parent_spinner_id: uuid.UUID = Field(foreign_key="spinner.id", index=True, ondelete="CASCADE")
    child_spinner_id: uuid.UUID = Field(foreign_key="spinner.id", index=True, ondelete="CASCADE")
    created_at: datetime = created_field()


class SpinnerLinkCreate(RequestBody):
    child_spinner_id: uuid.UUID
    kind: LinkKind
    condition: str | None = PydField(default=None, max_length=1000)
    delay: str | None = PydField(default=None, max_length=32)
    max_attempts: int = PydField(default=1, ge=1, le=MAX_LINK_ATTEMPTS)
    event: str | None = PydField(default=None, min_length=1, max_length=200)

    @field_validator("condition")
    @classmethod
    def _condition(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            compile_expression(value)
        except ExpressionError as exc:
            raise ValueError(f"condition: {exc}") from None
        return value.strip()

    @field_validator("delay")
    @classmethod
    def _delay(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_duration(value)
        return value.strip()

    @model_validator(mode="after")
    def _per_kind(self) -> Self:
        if self.kind == LinkKind.retry:
            if self.condition is None:
                raise ValueError('a retry link needs a condition, e.g. disposition == "Retry"')
            if self.event is not None:
                raise ValueError("event filters apply to callback links only")
        else:
            if self.condition is not None:
                raise ValueError("conditions apply to retry links only")
            if self.max_attempts != 1:
                raise ValueError("maxAttempts applies to retry links only")
        return self


class SpinnerLinkPublic(PublicModel):
    id: uuid.UUID
    parent_spinner_id: uuid.UUID
    child_spinner_id: uuid.UUID
    kind: str
    condition: str | None
    delay: str | None
    max_attempts: int
    event: str | None
    created_at: datetime


class SpinnerLinksPublic(PublicModel):
    data: list[SpinnerLinkPublic]
    count: int


def delay_seconds(delay: str | None) -> float:
    return parse_duration(delay).total_seconds() if delay else 0.0
