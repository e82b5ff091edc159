"""Data tables: source rows stored as JSONB, plus the bookkeeping of their ingest endpoints.

`DataRow` and `IngestIdempotency` live here rather than in files of their own: neither exists
without a data table, and nothing else in the code base writes them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field as PydField
from sqlalchemy import BigInteger, Column, ForeignKey, Identity, Index, UniqueConstraint, Uuid
from sqlalchemy.dialects.postgresql import JSONB
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

MAX_INGEST_RECORDS = 500
MAX_ROWS_PAGE = 500


class DataTable(SQLModel, table=True):
    __tablename__ = "data_table"
    # The CLI and people find a table by project and name, so the pair must be unambiguous.
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_data_table_project_name"),)

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    # No index of its own: the (project_id, name) unique index serves lookups by project.
    project_id: uuid.UUID = Field(foreign_key="project.id", ondelete="CASCADE")
    name: str = Field(max_length=200)
    # Empty until the first import; from then on every row has exactly these keys.
    columns: list[str] = jsonb_field(list)
    metadata_fields: list[str] = jsonb_field(list)
    row_count: int = Field(default=0, sa_type=BigInteger, nullable=False)
    ingest_token_hash: str | None = Field(default=None, max_length=64, unique=True)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class DataRow(SQLModel, table=True):
    __tablename__ = "data_row"

    table_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid,
            ForeignKey("data_table.id", ondelete="CASCADE"),
            primary_key=True,
            nullable=False,
        )
    )
    # One identity across all tables: records of jobs refer to a row by this id alone.
    row_id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=False), primary_key=True, nullable=False),
    )
    data: dict[str, Any] = jsonb_field(dict)


class IngestIdempotency(SQLModel, table=True):
    __tablename__ = "ingest_idempotency"
    __table_args__ = (Index("ix_ingest_idempotency_created_at", "created_at"),)

    org_id: uuid.UUID = Field(foreign_key="organization.id", primary_key=True, ondelete="CASCADE")
    key: str = Field(primary_key=True, max_length=255)
    body_sha256: str = Field(max_length=64)
    # Null while the first request holding the key is still in flight.
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = created_field()


class DataTableCreate(RequestBody):
    name: Name


class DataTableUpdate(RequestBody):
    name: Name | None = None
    metadata_fields: list[str] | None = PydField(default=None, max_length=1000)


class DataTablePublic(PublicModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    columns: list[str]
    metadata_fields: list[str]
    row_count: int
    has_ingest_token: bool
    created_at: datetime
    updated_at: datetime


class DataTablesPublic(PublicModel):
    data: list[DataTablePublic]
    count: int


class ImportPublic(PublicModel):
    table: DataTablePublic
    inserted: int
    delimiter: str


class RowPublic(PublicModel):
    row_id: int
    data: dict[str, Any]


class RowsPublic(PublicModel):
    columns: list[str]
    data: list[RowPublic]
    count: int
    next_after: int | None


class IngestTokenPublic(PublicModel):
    token: str
    url: str


IngestRecords = list[dict[str, Any]]


class IngestBody(RequestBody):
    records: IngestRecords = PydField(min_length=1, max_length=MAX_INGEST_RECORDS)


class KeyIngestBody(RequestBody):
    data_table_id: uuid.UUID = PydField(alias="dataTableId")
    records: IngestRecords = PydField(min_length=1, max_length=MAX_INGEST_RECORDS)


class IngestResult(PublicModel):
    ok: bool = True
    inserted: int


class RowsAppended(PublicModel):
    inserted: int
    # In the order of the records sent: a run over just these rows passes them as `rowIds`.
    row_ids: list[int]
