"""Reading a call recording (and, for the mock STT, the transcript file beside it) from storage.

A recording is streamed to a temporary file in chunks, never held whole in memory: an S3 object
through boto3's `get_object` body, an https URL through httpx under the `api_call` address
rules (`infra.http_guard`: no loopback, private or link-local address unless the operator
allowed the host). Problems the caller must fix (no such object, an empty file, a format we do
not accept, a refused address) are non-retryable errors that say so; a storage outage is
retried.
"""

from __future__ import annotations

import asyncio
import io
import posixpath
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx
from botocore.exceptions import BotoCoreError, ClientError
from temporalio.exceptions import ApplicationError

from activities.calls.targets import Target, permanent
from infra.http_guard import AddressGuard, BlockedAddressError, GuardedTransport
from infra.providers import ProviderGuard, ProviderUrlBlocked, s3_client
from models.call_analysis.audio import ACCEPTED, SNIFF_BYTES, audio_format

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHUNK: Final = 1024 * 1024
# Far above any call recording (a 2-hour WAV at 16 kHz mono is ~230 MB).
MAX_RECORDING_BYTES: Final = 4 * 1024**3
MAX_TRANSCRIPT_BYTES: Final = 5 * 1024**2
HTTP_TIMEOUT: Final = httpx.Timeout(30.0, read=120.0)
NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
DENIED_CODES: Final = frozenset(
    {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
)

Progress = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class Located:
    """Where a recording is: an S3 object of the storage integration, or an http(s) URL."""

    shown: str
    bucket: str | None = None
    key: str | None = None
    url: str | None = None

    def sibling(self, suffix: str) -> Located:
        """The file beside it with `suffix` instead of its extension (`calls/a.wav` → `a.txt`)."""
        if self.key is not None:
            key = posixpath.splitext(self.key)[0] + suffix
            return Located(f"s3://{self.bucket}/{key}", self.bucket, key)
        assert self.url is not None
        parts = urlsplit(self.url)
        path = posixpath.splitext(parts.path)[0] + suffix
        url = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
        return Located(_shown_url(url), url=url)


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    format: str


def _shown_url(url: str) -> str:
    # Query strings carry signatures (presigned URLs): never in errors or the journey.
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def locate(raw: str, storage: Target | None, step_id: str) -> Located:
    value = raw.strip()
    if not value:
        raise permanent(f"step {step_id}: the record has no recording", "RecordingMissing")
    scheme = urlsplit(value).scheme.lower()
    if scheme in ("http", "https"):
        return Located(_shown_url(value), url=value)
    if storage is None or storage.kind != "s3":
        raise permanent(
            f"step {step_id}: recording {value!r} is not an https URL; choose an s3 storage "
            "integration to read s3:// URLs and object keys",
            "RecordingLocation",
        )
    bucket = str(storage.config.get("bucket") or "")
    if scheme == "s3":
        parts = urlsplit(value)
        if parts.netloc != bucket:
            raise permanent(
                f"step {step_id}: recording {value!r} is not in the storage integration's "
                f"bucket {bucket!r}",
                "RecordingLocation",
            )
        key = parts.path.lstrip("/")
    elif scheme:
        raise permanent(
            f"step {step_id}: recording {value!r}: {scheme}:// URLs are not supported "
            "(s3://, https:// or an object key)",
            "RecordingLocation",
        )
    else:
        prefix = str(storage.config.get("prefix") or "").strip("/")
        key = f"{prefix}/{value.lstrip('/')}" if prefix else value.lstrip("/")
    if not key:
        raise permanent(f"step {step_id}: recording {value!r} names no object", "RecordingMissing")
    return Located(f"s3://{bucket}/{key}", bucket, key)


class RecordingStore:
    """Reads recordings for one step: the storage integration's client, built once."""

    def __init__(
        self,
        step_id: str,
        storage: Target | None,
        storage_creds: dict[str, Any] | None,
        *,
        provider_guard: ProviderGuard,
        http_guard: AddressGuard,
    ) -> None:
        self.step_id = step_id
        self.storage = storage
        self._creds = storage_creds
        self._provider_guard = provider_guard
        self._http_guard = http_guard
        self._s3: S3Client | None = None

    async def _client(self) -> S3Client:
        if self._s3 is None:
            assert self.storage is not None and self._creds is not None
            try:
                self._s3 = await s3_client(
                    self.storage.config, self._creds, guard=self._provider_guard
                )
            except ProviderUrlBlocked as exc:
                raise permanent(f"step {self.step_id}: {exc}", "StorageUrlBlocked") from None
            except ValueError as exc:
                raise permanent(
                    f"step {self.step_id}: storage integration {self.storage.integration_id} is "
                    f"misconfigured: {exc}",
                    "IntegrationConfig",
                ) from None
        return self._s3

    async def download(self, where: Located, dest: Path, progress: Progress) -> Downloaded:
        """Streams the recording to `dest` and checks it is non-empty audio we accept."""
        with dest.open("wb") as out:
            size = await self._copy(where, out, progress, MAX_RECORDING_BYTES)
        if size == 0:
            raise permanent(
                f"step {self.step_id}: recording {where.shown} is empty (0 bytes)",
                "RecordingEmpty",
            )
        with dest.open("rb") as fh:
            found = audio_format(fh.read(SNIFF_BYTES))
        if found is None:
            raise permanent(
                f"step {self.step_id}: recording {where.shown} is not in a supported audio "
                f"format ({ACCEPTED})",
                "UnsupportedAudio",
            )
        return Downloaded(dest, size, found)

    async def read_small(self, where: Located) -> bytes | None:
        """A small file's bytes (a mock transcript), or None if there is no such file."""
        dest = io.BytesIO()
        try:
            await self._copy(where, dest, _no_progress, MAX_TRANSCRIPT_BYTES)
        except ApplicationError as exc:
            if exc.type == "RecordingNotFound":
                return None
            raise
        return dest.getvalue()

    async def _copy(self, where: Located, out: IO[bytes], progress: Progress, limit: int) -> int:
        if where.key is not None:
            return await self._copy_s3(where, out, progress, limit)
        return await self._copy_http(where, out, progress, limit)

    async def _copy_s3(self, where: Located, out: IO[bytes], progress: Progress, limit: int) -> int:
        client = await self._client()
        assert where.bucket is not None and where.key is not None
        bucket, key = where.bucket, where.key

        def open_body() -> Iterator[bytes]:
            return client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(CHUNK)

        def next_chunk(chunks: Iterator[bytes]) -> bytes:
            return next(chunks, b"")

        try:
            chunks = await asyncio.to_thread(open_body)
            total = 0
            while chunk := await asyncio.to_thread(next_chunk, chunks):
                total = self._write(out, chunk, total, limit, where)
                await progress(total)
        except ClientError as exc:
            raise self._s3_error(exc, where) from None
        except BotoCoreError as exc:
            # Connection and read failures: the store may be back on the next attempt.
            raise ApplicationError(
                f"step {self.step_id}: could not read {where.shown} ({type(exc).__name__})",
                type="StorageUnavailable",
            ) from None
        return total

    def _s3_error(self, exc: ClientError, where: Located) -> ApplicationError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in NOT_FOUND_CODES or status == 404:
            return permanent(
                f"step {self.step_id}: recording {where.shown} not found in storage (404)",
                "RecordingNotFound",
            )
        if code in DENIED_CODES or status == 403:
            return permanent(
                f"step {self.step_id}: storage refused to read {where.shown} ({code or status}): "
                "check the storage integration's keys",
                "StorageDenied",
            )
        return ApplicationError(
            f"step {self.step_id}: storage failed reading {where.shown} ({code or status})",
            type="StorageUnavailable",
        )

    async def _copy_http(
        self, where: Located, out: IO[bytes], progress: Progress, limit: int
    ) -> int:
        assert where.url is not None
        total = 0
        async with httpx.AsyncClient(
            transport=GuardedTransport(self._http_guard),
            timeout=HTTP_TIMEOUT,
            follow_redirects=True,
            max_redirects=5,
            trust_env=False,
        ) as client:
            try:
                async with client.stream("GET", where.url) as response:
                    status = response.status_code
                    if status in (404, 410):
                        raise permanent(
                            f"step {self.step_id}: recording {where.shown} not found "
                            f"(HTTP {status})",
                            "RecordingNotFound",
                        )
                    if status >= 500 or status in (408, 429):
                        raise ApplicationError(
                            f"step {self.step_id}: {where.shown} answered HTTP {status}; "
                            "will retry",
                            type="StorageUnavailable",
                        )
                    if status >= 400:
                        raise permanent(
                            f"step {self.step_id}: {where.shown} refused the download "
                            f"(HTTP {status})",
                            "StorageDenied",
                        )
                    async for chunk in response.aiter_bytes(CHUNK):
                        total = self._write(out, chunk, total, limit, where)
                        await progress(total)
            except BlockedAddressError as exc:
                raise permanent(f"step {self.step_id}: {exc}", "RecordingUrlBlocked") from None
            except httpx.TooManyRedirects:
                raise permanent(
                    f"step {self.step_id}: {where.shown} redirected too often", "StorageDenied"
                ) from None
            except httpx.HTTPError as exc:
                raise ApplicationError(
                    f"step {self.step_id}: could not read {where.shown} ({type(exc).__name__})",
                    type="StorageUnavailable",
                ) from None
        return total

    def _write(self, out: IO[bytes], chunk: bytes, total: int, limit: int, where: Located) -> int:
        total += len(chunk)
        if total > limit:
            raise permanent(
                f"step {self.step_id}: {where.shown} is larger than {limit // 1024**2} MB",
                "RecordingTooLarge",
            )
        out.write(chunk)
        return total


async def _no_progress(done: int) -> None:
    return None
