"""Call transcripts: written by the `transcribe` step, read by later steps and the API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import cast, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
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
    stt_ms: int | None = None,
) -> bool:
    """Insert or replace the record's transcript (a retried step writes the same row again);
    True when the record had none before."""
    values = {
        "record_id": record_id,
        "org_id": org_id,
        "provider": provider,
        "duration_s": duration_s,
        "utterances": [u.model_dump(mode="json") for u in utterances],
        "provider_request_id": provider_request_id,
        "stt_ms": stt_ms,
        "created_at": datetime.now(UTC),
    }
    stmt = insert(TABLE).values(**values)
    # xmax is 0 on a freshly inserted row, set on one the conflict updated.
    inserted = await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[TABLE.c.record_id],
            set_={k: stmt.excluded[k] for k in values if k != "record_id"},
        ).returning(text("(xmax = 0) as inserted"))
    )
    return bool(inserted.scalar_one())


async def save_analysis(
    conn: AsyncConnection, record_id: int, org_id: uuid.UUID, part: dict[str, Any]
) -> None:
    """Merges `part` (a step's results) into the transcript's analysis so far."""
    await conn.execute(
        update(TABLE)
        .where(TABLE.c.record_id == record_id, TABLE.c.org_id == org_id)
        .values(
            analysis=func.coalesce(TABLE.c.analysis, text("'{}'::jsonb")).op("||")(
                cast(part, JSONB)
            )
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
