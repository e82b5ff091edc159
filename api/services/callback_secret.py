"""Each organization's random record-callback secret, kept in Vault beside (not among) its own
secrets, at `orgs/{org}/system/callback-secret`.

One document `{current, previous, previous_until, rotated_at}`: a rotation makes the current
secret the previous one, which keeps verifying until `previous_until` (now + the configured
overlap, or now for an immediate rotation), so senders can switch without losing callbacks.
Written with check-and-set, so two concurrent rotations cannot both win.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from api.errors import AppError
from infra.callback_signing import new_callback_secret
from infra.vault import SecretStore, SecretVersionConflict
from models.callback_secret import CallbackSecretCreated, CallbackSecretStatus

SYSTEM_NAME = "callback-secret"
AUDIT_NAME = "system/callback-secret"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def valid_secrets(document: dict[str, Any], now: datetime) -> list[str]:
    """The secrets that verify at `now`: the current one, and the previous one in its overlap."""
    found = [document["current"]] if isinstance(document.get("current"), str) else []
    until = _time(document.get("previous_until"))
    if isinstance(document.get("previous"), str) and until is not None and now < until:
        found.append(document["previous"])
    return found


def _status(document: dict[str, Any], version: int, now: datetime) -> CallbackSecretStatus:
    until = _time(document.get("previous_until"))
    return CallbackSecretStatus(
        exists=True,
        version=version,
        rotated_at=_time(document.get("rotated_at")),
        previous_valid_until=until if until is not None and now < until else None,
    )


async def verifying_secrets(store: SecretStore, org_id: uuid.UUID) -> list[str]:
    found = await store.read_system(org_id, SYSTEM_NAME)
    return [] if found is None else valid_secrets(found[0], datetime.now(UTC))


async def secret_status(store: SecretStore, org_id: uuid.UUID) -> CallbackSecretStatus:
    found = await store.read_system(org_id, SYSTEM_NAME)
    if found is None:
        return CallbackSecretStatus(exists=False)
    return _status(found[0], found[1], datetime.now(UTC))


def rotated(document: dict[str, Any] | None, overlap: timedelta, now: datetime) -> dict[str, Any]:
    """The next document: a new current secret; the old current one verifies until now+overlap."""
    old = None if document is None else document.get("current")
    keep = isinstance(old, str) and overlap > timedelta(0)
    return {
        "current": new_callback_secret(),
        "previous": old if keep else None,
        "previous_until": (now + overlap).isoformat() if keep else None,
        "rotated_at": now.isoformat(),
    }


async def rotate_secret(
    store: SecretStore, org_id: uuid.UUID, overlap: timedelta
) -> CallbackSecretCreated:
    """Create the organization's first secret, or rotate it; the only answer that shows it."""
    found = await store.read_system(org_id, SYSTEM_NAME)
    now = datetime.now(UTC)
    document = rotated(None if found is None else found[0], overlap, now)
    try:
        version = await store.write_system(
            org_id, SYSTEM_NAME, document, cas=0 if found is None else found[1]
        )
    except SecretVersionConflict:
        raise AppError(
            "The callback secret was rotated at the same time by another request; try again",
            "VERSION_CONFLICT",
            409,
        ) from None
    status = _status(document, version, now)
    return CallbackSecretCreated(**status.model_dump(), secret=document["current"])
