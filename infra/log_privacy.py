"""Loggers that would write contact data: HTTP client libraries log every request URL at INFO,
and our URLs are templated from rows (`/contacts/{{phone}}`). They only speak up for warnings."""

from __future__ import annotations

import logging

QUIET_LOGGERS = (
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "openai",
    "twilio",
    "twilio.http_client",
    "urllib3",
)


def quiet_http_loggers() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
