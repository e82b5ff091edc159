"""A job's live progress as the API serves it (from PostgreSQL, never a workflow query)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from models.base import PublicModel


class JobPhase(StrEnum):
    preparing = "preparing"  # queued: the workflow has not created the records yet
    running = "running"
    waiting = "waiting"  # only records waiting for a reply or a timer are left
    paused = "paused"
    ended = "ended"


class JobProgressPublic(PublicModel):
    job_id: uuid.UUID
    status: str
    phase: JobPhase
    paused: bool
    total: int
    pending: int
    started: int
    active: int
    waiting: int
    completed: int
    failed: int
    cancelled: int
    done: int
    # Records ended per second over the last 30 s of polls, or since the job started.
    rate_per_s: float | None
    eta_s: float | None
    started_at: datetime | None
    ended_at: datetime | None
    as_of: datetime
