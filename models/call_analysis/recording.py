"""What the recording upload answers."""

from __future__ import annotations

from models.base import PublicModel


class RecordingPublic(PublicModel):
    # `s3://bucket/key`: what a Calls row's `recording_url` holds.
    recording_url: str
    key: str
    size: int
    format: str
