from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import (
    Name,
    PublicModel,
    RequestBody,
    created_field,
    id_field,
    jsonb_field,
    org_field,
)
from models.spinner_language.definition import SpinnerDefinition


class SpinnerKind(StrEnum):
    main = "main"
    supporting = "supporting"


class Spinner(SQLModel, table=True):
    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    project_id: uuid.UUID = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    description: str = ""
    kind: str = Field(default=SpinnerKind.main.value, max_length=16)
    draft: dict[str, Any] = jsonb_field(dict)
    latest_version: int = 0
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class SpinnerVersion(SQLModel, table=True):
    __tablename__ = "spinner_version"
    __table_args__ = (UniqueConstraint("spinner_id", "version"),)

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    spinner_id: uuid.UUID = Field(foreign_key="spinner.id", index=True, ondelete="CASCADE")
    version: int
    definition: dict[str, Any] = jsonb_field(dict)
    content_hash: str = Field(max_length=64)
    published_at: datetime = created_field()
    published_by: uuid.UUID | None = Field(
        default=None, foreign_key="app_user.id", ondelete="SET NULL"
    )


class _DocumentedAsDefinition:
    """Documents a draft as a `SpinnerDefinition` while accepting any JSON object: a draft
    may be unfinished, and the API reports its problems as located `issues` instead of a
    422 from body parsing."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(SpinnerDefinition.__pydantic_core_schema__)


DraftDefinition = Annotated[dict[str, Any], _DocumentedAsDefinition]


class SpinnerCreate(RequestBody):
    name: Name
    description: str = ""
    definition: DraftDefinition | None = None


class SpinnerUpdate(RequestBody):
    name: Name | None = None
    description: str | None = None
    definition: DraftDefinition | None = None


class IssuePublic(PublicModel):
    level: str
    step_id: str | None
    path: str
    message: str


class SpinnerPublic(PublicModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    description: str
    kind: str
    draft: dict[str, Any]
    latest_version: int
    created_at: datetime
    updated_at: datetime
    issues: list[IssuePublic] = []


class SpinnersPublic(PublicModel):
    data: list[SpinnerPublic]
    count: int


class SpinnerVersionPublic(PublicModel):
    id: uuid.UUID
    spinner_id: uuid.UUID
    version: int
    definition: dict[str, Any]
    content_hash: str
    published_at: datetime


class SpinnerVersionsPublic(PublicModel):
    data: list[SpinnerVersionPublic]
    count: int
