"""The codec server's rules: who may open which sealed payload.

A sealed payload names its owner (see infra/codec.py): the workflow it belongs to, or the
organization whose user sealed it through /codec/encode. Workflow ids are business keys
(`rec-{record id}…`, `job-{job id}`, `sched-{schedule id}…`), so the owning organization is one
indexed lookup per kind of id. A payload that names no owner — sealed before owners were recorded,
or by a workflow that is none of ours — belongs to nobody the codec server can check, so nobody
decodes it here; operators with Vault access still read it with the worker's codec.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Iterable, Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.api.common.v1 import Payload

from api.errors import AppError
from infra.codec import (
    ENCODING,
    AesGcmCodec,
    CodecKeyError,
    PayloadTampered,
    load_codec,
    payload_owner,
)
from infra.settings import Settings
from infra.vault import VaultUnavailable
from models.job import Job
from models.record import Record
from models.schedule import SpinnerSchedule

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# Record ids are BIGINT: at most 18 digits always fit.
RECORD_WF = re.compile(r"rec-(\d{1,18})(?:-.*)?", re.DOTALL)
JOB_WF = re.compile(rf"job-({_UUID})")
SCHEDULE_WF = re.compile(rf"sched-({_UUID})(?:-.*)?", re.DOTALL)


class CodecProvider:
    """Loads the codec's keyring from Vault on first use, so the API starts while Vault is down."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._codec: AesGcmCodec | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> AesGcmCodec:
        if self._codec is None:
            async with self._lock:
                if self._codec is None:
                    try:
                        self._codec = await load_codec(self.settings)
                    except VaultUnavailable:
                        raise
                    except Exception as exc:  # hvac / network: say which system, not the details
                        raise VaultUnavailable(
                            "the payload codec's keys could not be read"
                        ) from exc
        return self._codec


def not_yours() -> AppError:
    # 404 as for any other organization's object; the message says what to check.
    return AppError(
        "One or more payloads do not belong to a workflow of your organization",
        "PAYLOAD_NOT_FOUND",
        404,
    )


async def workflow_orgs(session: AsyncSession, workflow_ids: Iterable[str]) -> dict[str, uuid.UUID]:
    """The owning organization of each of our workflow ids that still has its row."""
    records: dict[int, list[str]] = {}
    jobs: dict[uuid.UUID, list[str]] = {}
    schedules: dict[uuid.UUID, list[str]] = {}
    for wf in set(workflow_ids):
        if m := RECORD_WF.fullmatch(wf):
            records.setdefault(int(m[1]), []).append(wf)
        elif m := JOB_WF.fullmatch(wf):
            jobs.setdefault(uuid.UUID(m[1]), []).append(wf)
        elif m := SCHEDULE_WF.fullmatch(wf):
            schedules.setdefault(uuid.UUID(m[1]), []).append(wf)
    found: dict[str, uuid.UUID] = {}
    if records:
        rows = await session.exec(
            select(Record.id, Record.org_id).where(col(Record.id).in_(list(records)))
        )
        for rid, org in rows:
            found.update(dict.fromkeys(records[int(rid or 0)], org))
    if jobs:
        for jid, org in await session.exec(
            select(Job.id, Job.org_id).where(col(Job.id).in_(list(jobs)))
        ):
            found.update(dict.fromkeys(jobs[jid], org))
    if schedules:
        for sid, org in await session.exec(
            select(SpinnerSchedule.id, SpinnerSchedule.org_id).where(
                col(SpinnerSchedule.id).in_(list(schedules))
            )
        ):
            found.update(dict.fromkeys(schedules[sid], org))
    return found


async def check_owned(
    session: AsyncSession, org_id: uuid.UUID, payloads: Sequence[Payload]
) -> None:
    """Refuse the whole request unless every sealed payload names a workflow of `org_id` (or
    `org_id` itself). Payloads that are not sealed are not secret and pass."""
    named = [payload_owner(p) for p in payloads if p.metadata.get("encoding") == ENCODING]
    owners = [o for o in named if o is not None]
    if len(owners) != len(named):
        raise not_yours()
    workflow_ids = {o.workflow_id for o in owners if o.workflow_id is not None}
    orgs = await workflow_orgs(session, workflow_ids) if workflow_ids else {}
    for owner in owners:
        if owner.workflow_id is not None:
            if orgs.get(owner.workflow_id) != org_id:
                raise not_yours()
        elif owner.org_id != str(org_id):
            raise not_yours()


async def decode_for(
    session: AsyncSession, codec: AesGcmCodec, org_id: uuid.UUID, payloads: Sequence[Payload]
) -> list[Payload]:
    await check_owned(session, org_id, payloads)
    try:
        return await codec.decode(payloads)
    except PayloadTampered as exc:
        raise AppError(
            "A payload does not open: its data or metadata were changed", "PAYLOAD_TAMPERED", 400
        ) from exc
    except CodecKeyError as exc:
        raise AppError(
            "A payload names an encryption key this server does not have",
            "PAYLOAD_KEY_UNKNOWN",
            400,
        ) from exc


async def encode_for(
    codec: AesGcmCodec, org_id: uuid.UUID, payloads: Sequence[Payload]
) -> list[Payload]:
    return await codec.for_organization(str(org_id)).encode(payloads)


# --- codec links: a codec endpoint URL that carries its own, codec-only credential ------------
# The Temporal UI sends `Authorization` only to an https endpoint and only with its own OIDC
# token, so a browser on the dev UI has no way to present a session token. A codec link puts a
# grant in the endpoint's path instead: it names the session, is signed with the server's secret,
# opens only /codec/*, and dies with the session (sign-out, takeover, expiry).
GRANT_PREFIX = "cxc_"
_GRANT = re.compile(rf"{GRANT_PREFIX}([0-9a-f]{{32}})([A-Za-z0-9_-]{{24}})")


def _grant_mac(secret_key: str, session_id: uuid.UUID) -> str:
    mac = hmac.new(secret_key.encode(), b"codec-link:" + session_id.bytes, hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:18]).decode()


def codec_grant(secret_key: str, session_id: uuid.UUID) -> str:
    return f"{GRANT_PREFIX}{session_id.hex}{_grant_mac(secret_key, session_id)}"


def grant_session_id(secret_key: str, grant: str) -> uuid.UUID | None:
    m = _GRANT.fullmatch(grant)
    if m is None:
        return None
    session_id = uuid.UUID(hex=m[1])
    if not hmac.compare_digest(m[2], _grant_mac(secret_key, session_id)):
        return None
    return session_id
