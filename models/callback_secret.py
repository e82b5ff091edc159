"""The organization's record-callback signing secret: how it is shown (once) and described."""

from __future__ import annotations

from datetime import datetime

from models.base import PublicModel, RequestBody


class CallbackSecretRotate(RequestBody):
    # After a leak: the previous secret stops verifying at once instead of after the overlap.
    immediate: bool = False


class CallbackSecretStatus(PublicModel):
    """What the organization may see at any time: never the secret itself."""

    exists: bool
    version: int | None = None
    rotated_at: datetime | None = None
    # The previous secret still verifies until then (null: no previous secret verifies).
    previous_valid_until: datetime | None = None


class CallbackSecretCreated(CallbackSecretStatus):
    """The answer of a rotation, the only time the new secret is shown."""

    secret: str
