"""Record callbacks signed the Standard Webhooks way (the `standardwebhooks` package).

The signature covers `webhook-id`, `webhook-timestamp` and the body together, so no part of what
makes an event unique can be swapped without re-signing; the timestamp must lie within five
minutes of our clock (the package's tolerance). Secrets are `whsec_` + base64 of random bytes.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the scheme asks for 24 to 64
# The standardwebhooks package's fixed tolerance for webhook-timestamp, for the docs to state
# (tests/cxgear/test_docs.py checks it against the package).
WINDOW_S = 300


class CallbackRefused(Exception):
    """Missing headers, a timestamp outside the window, or no secret matches. Never says which
    secret was tried."""


def new_callback_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign_callback(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a sender adds to POST `body` (its exact bytes, UTF-8 JSON) to a record's
    callback URL. `timestamp` is Unix seconds, `msg_id` the sender's unique id for the event."""
    signature = Webhook(secret).sign(
        msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode()
    )
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature}


def verify_callback(secrets_: Iterable[str], headers: Mapping[str, str], body: bytes) -> str:
    """The signed `webhook-id` when any of `secrets_` signed this request; else CallbackRefused.

    Several secrets verify during a rotation's overlap window.
    """
    wanted = {
        name: value
        for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
        if (value := headers.get(name))
    }
    if len(wanted) < 3:
        raise CallbackRefused("missing webhook-id, webhook-timestamp or webhook-signature")
    for secret in secrets_:
        try:
            Webhook(secret).verify(body, wanted, json_parse=False)
        except WebhookVerificationError as exc:
            if "timestamp" in str(exc).lower():
                raise CallbackRefused("timestamp outside the 5-minute window") from None
            continue
        except ValueError:
            # A body that is not UTF-8 or a malformed signature list (bad base64, no "v1,").
            raise CallbackRefused("malformed signature or body") from None
        return wanted[ID_HEADER]
    raise CallbackRefused("no matching signature")
