"""Shared column helpers and constrained types for every SQLModel table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel
from sqlalchemy import Column, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from models.fields import Name, nested_text_problem

__all__ = ["Name", "PublicModel", "RequestBody"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def id_field() -> Any:
    return Field(default_factory=new_id, primary_key=True)


def org_field() -> Any:
    return Field(foreign_key="organization.id", index=True, ondelete="CASCADE")


def created_field() -> Any:
    return Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        nullable=False,
    )


def tz_field(default: datetime | None = None) -> Any:
    return Field(default=default, sa_type=DateTime(timezone=True))


def jsonb_field(default_factory: Any) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JSONB, nullable=False))


# The API speaks camelCase (PRODUCT.md "API style"); Python keeps snake_case field names and the
# aliases are generated, so a new field cannot be added in the other style.
API_STYLE = ConfigDict(alias_generator=to_camel, serialize_by_alias=True, validate_by_alias=True)


class RequestBody(BaseModel):
    """Base of every API request body: unknown fields are refused so ids cannot be smuggled.

    Only the camelCase names are accepted: a snake_case key is an unknown field (the 422 names the
    camelCase one), so one request never mixes two spellings of the same field.
    """

    model_config = ConfigDict(**API_STYLE, extra="forbid", validate_by_name=False)

    @field_validator("*", mode="before")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        # Every string of every body, nested ones and object keys included (ingest rows, spinner
        # definitions, metadata): what PostgreSQL cannot store is a 422 naming the field.
        problem = nested_text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class PublicModel(BaseModel):
    """Base of every API response body, serialised with its camelCase aliases.

    Built in Python by field name (or from a table row's attributes); dumps use the aliases.
    """

    model_config = ConfigDict(**API_STYLE, from_attributes=True, validate_by_name=True)
