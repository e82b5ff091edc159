"""Uploading a call recording into a project's storage, server-side.

The body is streamed straight into the storage integration's bucket (S3 multipart upload once it
passes one part), so the CLI never needs the storage keys and the API never holds a whole file.
The first bytes are sniffed with the pipeline's own check (`models.call_analysis.audio`) before
anything is written; a body that ends early, goes over the size limit or fails midway aborts the
multipart upload, so nothing is left in the bucket.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AppError
from infra.providers import ProviderGuard, ProviderUrlBlocked, s3_client
from infra.vault import SecretNotFound, SecretStore
from models.call_analysis.audio import ACCEPTED, MIME_TYPES, SNIFF_BYTES, audio_format
from models.call_analysis.setup import CallSetup, stored_setup
from models.integration import Integration, IntegrationKind
from models.project import Project

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

# S3 parts must be at least 5 MiB (but the last); a recording below one part is a single PUT.
PART_BYTES: Final = 8 * 1024 * 1024
MAX_NAME: Final = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class StoredRecording:
    url: str
    bucket: str
    key: str
    size: int
    format: str


def safe_file_name(name: str) -> str:
    """The file name kept in the object key: its last path part, in a conservative alphabet."""
    base = posixpath.basename(name.replace("\\", "/")).strip()
    cleaned = _UNSAFE.sub("_", base).strip("._")
    if not cleaned or len(cleaned) > MAX_NAME:
        raise AppError(
            f"name must be a file name of 1 to {MAX_NAME} characters (letters, digits, . _ -)",
            "VALIDATION_ERROR",
            422,
            [{"field": "name", "message": "not a usable file name"}],
        )
    return cleaned


async def storage_of(session: AsyncSession, project: Project) -> Integration:
    """The s3 storage integration the project's call setup names."""
    setup = stored_setup(getattr(await session.get(CallSetup, project.id), "settings", None))
    if setup.storage_integration_id is None:
        raise AppError(
            f"Project '{project.name}' has no storage integration; choose one in its call setup "
            "(PUT /projects/{id}/call-setup storageIntegrationId)",
            "STORAGE_NOT_SET",
            409,
        )
    integration = await session.get(Integration, setup.storage_integration_id)
    if integration is None or integration.org_id != project.org_id:
        raise AppError(
            "The call setup's storage integration no longer exists", "STORAGE_NOT_SET", 409
        )
    if integration.kind != IntegrationKind.s3:
        raise AppError(
            f"The storage integration '{integration.name}' is {integration.kind}: recordings can "
            "be uploaded only to s3 storage (add https recordings as rows with their URLs)",
            "STORAGE_KIND",
            409,
        )
    return integration


async def _client(integration: Integration, secrets: SecretStore, guard: ProviderGuard) -> S3Client:
    try:
        creds = await secrets.read_credentials(integration.org_id, integration.id)
    except SecretNotFound:
        raise AppError(
            f"The storage integration '{integration.name}' has no credentials stored",
            "INTEGRATION_CONFIG",
            409,
        ) from None
    try:
        return await s3_client(integration.config or {}, creds, guard=guard)
    except ProviderUrlBlocked as exc:
        raise AppError(str(exc), "INTEGRATION_CONFIG", 409) from None
    except ValueError as exc:
        raise AppError(
            f"The storage integration '{integration.name}' is misconfigured: {exc}",
            "INTEGRATION_CONFIG",
            409,
        ) from None


def _storage_error(exc: Exception) -> AppError:
    # Only the S3 error code: a provider message could quote the request.
    code = (
        str(exc.response.get("Error", {}).get("Code") or "error")
        if isinstance(exc, ClientError)
        else type(exc).__name__
    )
    return AppError(f"The storage refused the upload ({code})", "STORAGE_ERROR", 502)


class _Upload:
    """One object written from parts; `abort` leaves nothing behind."""

    def __init__(self, client: S3Client, bucket: str, key: str, content_type: str) -> None:
        self.client, self.bucket, self.key, self.content_type = client, bucket, key, content_type
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    async def part(self, data: bytes) -> None:
        if self.upload_id is None:
            started = await asyncio.to_thread(
                self.client.create_multipart_upload,
                Bucket=self.bucket,
                Key=self.key,
                ContentType=self.content_type,
            )
            self.upload_id = started["UploadId"]
        number = len(self.parts) + 1
        done = await asyncio.to_thread(
            self.client.upload_part,
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=data,
        )
        self.parts.append({"ETag": done["ETag"], "PartNumber": number})

    async def finish(self, last: bytes) -> None:
        if self.upload_id is None:
            await asyncio.to_thread(
                self.client.put_object,
                Bucket=self.bucket,
                Key=self.key,
                Body=last,
                ContentType=self.content_type,
            )
            return
        if last:
            await self.part(last)
        await asyncio.to_thread(
            self.client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},  # type: ignore[typeddict-item]
        )

    async def abort(self) -> None:
        if self.upload_id is None:
            return
        try:
            await asyncio.to_thread(
                self.client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
            )
        except (ClientError, BotoCoreError) as exc:
            # The store expires unfinished uploads itself; nothing is visible meanwhile.
            log.warning("could not abort the upload of %s: %s", self.key, type(exc).__name__)


async def store_recording(
    body: AsyncIterator[bytes],
    *,
    name: str,
    project: Project,
    session: AsyncSession,
    secrets: SecretStore,
    guard: ProviderGuard,
) -> StoredRecording:
    file_name = safe_file_name(name)
    integration = await storage_of(session, project)
    config = integration.config or {}
    bucket = str(config.get("bucket") or "")
    prefix = str(config.get("prefix") or "").strip("/")
    # A fresh folder per upload: a name used twice never overwrites an earlier recording, and a
    # transcript put beside it (`<name>.txt`, read by the mock STT) stays its neighbour.
    folder = uuid.uuid4().hex
    key = "/".join(p for p in (prefix, folder, file_name) if p)

    buffered = bytearray()
    chunks = body.__aiter__()
    async for chunk in chunks:
        buffered += chunk
        if len(buffered) >= SNIFF_BYTES:
            break
    if not buffered:
        raise AppError("The recording is empty (0 bytes)", "RECORDING_EMPTY", 422)
    found = audio_format(bytes(buffered[:SNIFF_BYTES]))
    if found is None:
        raise AppError(
            f"'{file_name}' is not in a supported audio format ({ACCEPTED})",
            "UNSUPPORTED_AUDIO",
            415,
        )

    upload = _Upload(await _client(integration, secrets, guard), bucket, key, MIME_TYPES[found])
    size = len(buffered)
    try:
        async for chunk in chunks:
            buffered += chunk
            size += len(chunk)
            if len(buffered) >= PART_BYTES:
                await upload.part(bytes(buffered))
                buffered.clear()
        await upload.finish(bytes(buffered))
    except (ClientError, BotoCoreError) as exc:
        await upload.abort()
        raise _storage_error(exc) from None
    except BaseException:
        # The client went away or the body passed the size limit: leave nothing half-written.
        await upload.abort()
        raise
    return StoredRecording(f"s3://{bucket}/{key}", bucket, key, size, found)
