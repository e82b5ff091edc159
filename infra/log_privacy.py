"""Keeping contact data and secrets out of logs.

HTTP client libraries log every request URL at INFO, and our URLs are templated from rows
(`/contacts/{{phone}}`): they only speak up for warnings. uvicorn's access log records every path,
and some carry a credential (an ingest webhook token, a codec link's grant): those are redacted.
"""

from __future__ import annotations

import logging
import re

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


# Path segments that are credentials or contact data. The do-not-contact removal by path is gone,
# but old clients may still call it and the access log would record the address they send.
_SECRET_SEGMENT = re.compile(r"(?<=/)(?:cxw_|cxg_|cxc_)[^/?#]*")
_SECRET_AFTER = re.compile(
    r"(/public/data-tables/ingest/|/do-not-contact/)(?!remove(?:[/?#]|$))[^/?#]+"
)
# Query values are kept only for paging and filtering parameters; any other (the records
# search `q`, a token someone put in a URL) may be contact data or a secret.
SAFE_QUERY_PARAMS = frozenset(
    {"limit", "before", "after", "status", "cursor", "page", "order", "sort", "kind", "type"}
)
REDACTED = "[redacted]"


def redact_path(path: str) -> str:
    """A request path (with its query string, as uvicorn logs it) fit for a log file."""
    base, sep, query = path.partition("?")
    base = _SECRET_AFTER.sub(rf"\1{REDACTED}", _SECRET_SEGMENT.sub(REDACTED, base))
    if not sep:
        return base
    kept = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        if name in SAFE_QUERY_PARAMS:
            kept.append(pair)
        else:
            kept.append(f"{name}={REDACTED}" if eq else REDACTED)
    return f"{base}?{'&'.join(kept)}"


class AccessLogRedaction(logging.Filter):
    """Rewrites the path argument of uvicorn's access log lines (`%s - "%s %s HTTP/%s" %d`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def redact_access_log() -> None:
    """Installed by the API app, so `cxgear api`, `cxgear dev` and bare uvicorn all get it."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogRedaction) for f in access.filters):
        access.addFilter(AccessLogRedaction())
