"""Durations as spinner authors write them: "90s", "1h30m", "2w" or ISO-8601 "PT1H"."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

__all__ = ["MAX_DURATION", "parse_duration"]

MAX_DURATION: Final = timedelta(days=365)

_SHORT_DURATION = re.compile(r"^(?:\d+[wdhms])+$", re.IGNORECASE)
_SHORT_PART = re.compile(r"(\d+)([wdhms])", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_UNITS: Final = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta:
    """Parse "90s", "15m", "2h", "3d", "1h30m", "2w" or ISO-8601 like "PT1H" / "P1DT12H".

    Raises ValueError unless the duration is positive and at most 365 days.
    """
    raw = text.strip() if isinstance(text, str) else ""
    parts: dict[str, float] = {}
    if _SHORT_DURATION.match(raw):
        for amount, unit in _SHORT_PART.findall(raw):
            key = _UNITS[unit.lower()]
            parts[key] = parts.get(key, 0) + int(amount)
    elif (match := _ISO_DURATION.match(raw)) and raw.upper() != "P":
        parts = {k: float(v) for k, v in match.groupdict().items() if v}
    else:
        raise ValueError(
            f"{text!r} is not a duration; use 90s, 15m, 2h, 3d or ISO-8601 like PT1H "
            "(years and months are not supported)"
        )
    try:
        value = timedelta(**parts)
    except OverflowError:
        value = timedelta.max
    if value <= timedelta(0):
        raise ValueError(f"duration {text!r} must be longer than zero")
    if value > MAX_DURATION:
        raise ValueError(f"duration {text!r} is longer than 365 days")
    return value
