"""Uploading call recordings into a call_analyzer project's storage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import ProviderGuardDep, SecretStoreDep, SessionDep
from api.services.calls.projects import RunCallProject
from api.services.calls.recordings import MAX_NAME, store_recording
from models.call_analysis.recording import RecordingPublic
from models.fields import SafeStr

router = APIRouter(tags=["call analysis"])

# The body is read as a stream, not declared as a parameter, so describe it for the API docs.
AUDIO_UPLOAD = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post("/projects/{project_id}/recordings", status_code=201, openapi_extra=AUDIO_UPLOAD)
async def upload_recording(
    project: RunCallProject,
    request: Request,
    session: SessionDep,
    secrets: SecretStoreDep,
    guard: ProviderGuardDep,
    name: Annotated[
        SafeStr,
        Query(min_length=1, max_length=MAX_NAME, description="The recording's file name"),
    ],
) -> RecordingPublic:
    """Store one recording (the raw file as the body) in the storage integration of the project's
    call setup, which must be s3. The content decides the format (WAV, MP3, OGG, FLAC, M4A/MP4 or WebM), not its name or
    Content-Type. Answers the object's `s3://` URL, to put in a row's `recording_url`."""
    stored = await store_recording(
        request.stream(),
        name=name,
        project=project,
        session=session,
        secrets=secrets,
        guard=guard,
    )
    return RecordingPublic(
        recording_url=stored.url, key=stored.key, size=stored.size, format=stored.format
    )
