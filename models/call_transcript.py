"""The transcript of one analysed call, keyed by its record.

Kept in PostgreSQL rather than in the record's outputs: a long call's utterances would swell the
workflow history (and every payload after the step), while later steps read them by record id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import BigInteger, Column, ForeignKey
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import created_field, jsonb_field, org_field


class Utterance(BaseModel):
    """One speaker's turn: who, when (seconds from the start), how sure, what was said."""

    speaker: str
    start: float
    end: float
    confidence: float | None = None
    transcript: str


class CallTranscript(SQLModel, table=True):
    __tablename__ = "call_transcript"

    record_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("record.id", ondelete="CASCADE"), primary_key=True)
    )
    org_id: uuid.UUID = org_field()
    # The integration kind that produced it (`deepgram`, `mock_stt`): mock transcripts say so.
    provider: str = Field(max_length=32)
    duration_s: float = 0.0
    utterances: list[dict[str, Any]] = jsonb_field(list)
    # The provider's request id, to find the call in its dashboard.
    provider_request_id: str | None = Field(default=None, max_length=200)
    # Milliseconds the speech-to-text took (download included).
    stt_ms: int | None = None
    # The analysis so far (`apply_tags`, `qa_score`), until the analysed call is written.
    analysis: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    created_at: datetime = created_field()
