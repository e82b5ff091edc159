"""Generic record callbacks: our own HMAC signature over record id, timestamp and body."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

from api.errors import AppError

WINDOW_S = 300
TIMESTAMP_HEADER = "x-cxgear-timestamp"
SIGNATURE_HEADER = "x-cxgear-signature"
EVENT_HEADER = "x-cxgear-event-id"


def org_callback_secret(secret_key: str, org_id: uuid.UUID) -> str:
    return hmac.new(secret_key.encode(), f"callbacks:{org_id}".encode(), hashlib.sha256).hexdigest()


def sign(secret: str, record_id: int, timestamp: int, body: bytes) -> str:
    message = f"{record_id}.{timestamp}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str, record_id: int, timestamp: str | None, signature: str | None, body: bytes
) -> None:
    if not timestamp or not signature:
        raise AppError("Missing callback signature headers", "BAD_SIGNATURE", 403)
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise AppError("Callback timestamp is not a number", "BAD_SIGNATURE", 403) from exc
    if abs(time.time() - ts) > WINDOW_S:
        raise AppError("Callback timestamp is outside the 5-minute window", "BAD_SIGNATURE", 403)
    if not hmac.compare_digest(sign(secret, record_id, ts, body), signature):
        raise AppError("Callback signature does not match", "BAD_SIGNATURE", 403)
