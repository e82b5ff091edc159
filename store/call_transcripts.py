"""Call transcripts: written by the `transcribe` step, read by later steps and the API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from models.call_transcript import CallTranscript, Utterance

TABLE = CallTranscript.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table models


async def save_transcript(
    conn: AsyncConnection,
    *,
    record_id: int,
    org_id: uuid.UUID,
    provider: str,
    duration_s: float,
    utterances: Sequence[Utterance],
    provider_request_id: str | None = None,
) -> None:
    """Insert or replace the record's transcript (a retried step writes the same row again)."""
    values = {
        "record_id": record_id,
        "org_id": org_id,
        "provider": provider,
        "duration_s": duration_s,
        "utterances": [u.model_dump(mode="json") for u in utterances],
        "provider_request_id": provider_request_id,
        "created_at": datetime.now(UTC),
    }
    stmt = insert(TABLE).values(**values)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[TABLE.c.record_id],
            set_={k: stmt.excluded[k] for k in values if k != "record_id"},
        )
    )


async def load_transcript(
    conn: AsyncConnection, record_id: int, org_id: uuid.UUID
) -> CallTranscript | None:
    row = (
        await conn.execute(
            select(TABLE).where(TABLE.c.record_id == record_id, TABLE.c.org_id == org_id)
        )
    ).first()
    return None if row is None else CallTranscript.model_validate(dict(row._mapping))


def utterances_of(transcript: CallTranscript) -> list[Utterance]:
    return [Utterance.model_validate(u) for u in transcript.utterances]
