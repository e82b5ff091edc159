"""The Standard Webhooks signature of record callbacks, and the overlap of a rotated secret."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from api.services.callback_secret import rotated, valid_secrets
from infra.callback_signing import (
    CallbackRefused,
    new_callback_secret,
    sign_callback,
    verify_callback,
)

BODY = b'{"answer": "yes"}'


def test_id_timestamp_and_body_are_signed_together() -> None:
    secret = new_callback_secret()
    now = int(time.time())
    headers = sign_callback(secret, "msg_1", now, BODY)
    assert verify_callback([secret], headers, BODY) == "msg_1"
    for changed, body in (
        ({**headers, "webhook-id": "msg_2"}, BODY),
        ({**headers, "webhook-timestamp": str(now - 1)}, BODY),
        (headers, BODY + b" "),
    ):
        with pytest.raises(CallbackRefused):
            verify_callback([secret], changed, body)


def test_any_of_several_secrets_verifies_and_others_do_not() -> None:
    old, new, stranger = (new_callback_secret() for _ in range(3))
    headers = sign_callback(old, "m", int(time.time()), BODY)
    assert verify_callback([new, old], headers, BODY) == "m"
    with pytest.raises(CallbackRefused):
        verify_callback([stranger], headers, BODY)
    with pytest.raises(CallbackRefused):
        verify_callback([], headers, BODY)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"webhook-id": "m", "webhook-timestamp": "now", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "m", "webhook-timestamp": "1e400", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "m", "webhook-timestamp": "nan", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "m", "webhook-timestamp": "{now}", "webhook-signature": "nocomma"},
        {"webhook-id": "m", "webhook-timestamp": "{now}", "webhook-signature": "v1,***"},
    ],
)
def test_malformed_headers_are_refused_not_raised(headers: dict[str, str]) -> None:
    headers = {k: v.format(now=int(time.time())) for k, v in headers.items()}
    with pytest.raises(CallbackRefused):
        verify_callback([new_callback_secret()], headers, BODY)
    with pytest.raises(CallbackRefused):
        verify_callback([new_callback_secret()], {**headers, "webhook-id": "m"}, b"\xff")


def test_the_previous_secret_verifies_until_the_overlap_ends() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first = rotated(None, timedelta(hours=24), t0)
    assert valid_secrets(first, t0) == [first["current"]]
    second = rotated(first, timedelta(hours=24), t0)
    assert valid_secrets(second, t0 + timedelta(hours=23)) == [second["current"], first["current"]]
    assert valid_secrets(second, t0 + timedelta(hours=24, seconds=1)) == [second["current"]]
    immediate = rotated(second, timedelta(0), t0)
    assert valid_secrets(immediate, t0) == [immediate["current"]]
