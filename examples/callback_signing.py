"""Send a signed callback to a CXGear record (standard library only).

python3 examples/callback_signing.py CALLBACK_URL SECRET '{"status": "qualified"}'
"""

import hashlib
import hmac
import json
import sys
import time
import urllib.request
from typing import Any


def callback_headers(secret: str, record_id: int, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers that make CXGear accept `body` as a callback for `record_id`."""
    message = f"{record_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return {
        "x-cxgear-timestamp": str(timestamp),
        "x-cxgear-signature": f"v1={digest}",
        "content-type": "application/json",
    }


def send_callback(callback_url: str, secret: str, payload: dict[str, Any]) -> Any:
    """POST `payload` to a record's callback URL (`{{context.callbackUrl}}`); returns the answer."""
    body = json.dumps(payload).encode()
    record_id = int(callback_url.rstrip("/").rsplit("/", 1)[1])
    headers = callback_headers(secret, record_id, body, int(time.time()))
    request = urllib.request.Request(callback_url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


if __name__ == "__main__":
    url, secret, payload = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    print(send_callback(url, secret, payload))
