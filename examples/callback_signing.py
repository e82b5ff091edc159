"""Send a signed callback to a CXGear record (standard library only).

    CALLBACK_SECRET=whsec_… python3 examples/callback_signing.py CALLBACK_URL '{"status": "qualified"}'

CXGear checks callbacks the Standard Webhooks way, so any Standard Webhooks library signs them
too (in Python, the `standardwebhooks` package: `Webhook(secret).sign(msg_id, when, body)`).
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.request
import uuid
from typing import Any


def callback_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers that make CXGear accept `body` (the exact bytes sent) at a record's callback
    URL: the signature covers the event's id, the time and the body together."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
    }


def send_callback(
    callback_url: str, secret: str, payload: dict[str, Any], msg_id: str | None = None
) -> Any:
    """POST `payload` to a record's callback URL (`{{context.callbackUrl}}`); returns the answer.

    `msg_id` names the event: a redelivery with the same id is taken once, so a sender that
    retries keeps the id; a new event needs a new one (a random one by default)."""
    body = json.dumps(payload).encode()
    headers = callback_headers(secret, msg_id or f"msg_{uuid.uuid4().hex}", int(time.time()), body)
    headers["content-type"] = "application/json"
    request = urllib.request.Request(callback_url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


if __name__ == "__main__":
    url, payload = sys.argv[1], json.loads(sys.argv[2])
    print(send_callback(url, os.environ["CALLBACK_SECRET"], payload))
