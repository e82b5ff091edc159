"""Setting types the steps share, and the strict base model every part of a definition uses.

A definition is what gets frozen when a spinner is published, so every model refuses
unknown settings: a typo must show up as an error, not silently do nothing.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from models.spinner_language.durations import parse_duration
from models.spinner_language.templating import NAMESPACES

DayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: Final[tuple[DayName, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_STEP_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
SECRET_NAME = re.compile(r"^[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*$")
# Same grammar as the HTTP client's response paths: `data.items[0].id`, optional `$.`.
JSON_PATH = re.compile(r"^(?:[^.\[\]]+|\[-?\d+\])(?:\.[^.\[\]]+|\[-?\d+\])*$")
_HH_MM = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text.strip()


def _check_step_id(value: str) -> str:
    if not _STEP_ID.match(value):
        raise ValueError(
            f"step id {value!r} must start with a lowercase letter and contain only "
            "lowercase letters, digits and underscores (at most 63 characters)"
        )
    return value


def _check_time_zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name like Europe/Paris"
        ) from None
    return value


def _check_hh_mm(value: str) -> str:
    if not _HH_MM.match(value):
        raise ValueError(f"{value!r} is not a 24-hour time like 09:00")
    return value


StepId = Annotated[str, AfterValidator(_check_step_id)]
Duration = Annotated[str, AfterValidator(_check_duration)]
Text = Annotated[str, StringConstraints(min_length=1)]
ColumnName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ClockTime = Annotated[str, AfterValidator(_check_hh_mm)]
TimeZoneName = Annotated[str | None, AfterValidator(_check_time_zone)]


def check_output_name(value: str) -> str:
    if not _FIELD_NAME.match(value) or value in NAMESPACES:
        raise ValueError(
            f"output name {value!r} must be letters, digits and underscores, "
            f"and not one of {', '.join(NAMESPACES)}, so templates can use it"
        )
    return value


OutputName = Annotated[str, AfterValidator(check_output_name)]


class StrictModel(BaseModel):
    # Numbers become text where text is expected: `tags: [2024]` in YAML means "2024".
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
