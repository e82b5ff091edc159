"""Imports every table module so metadata is complete for Alembic and tests."""

from models import (
    api_key,
    callback_event,
    data_table,
    job,
    journey,
    organization,
    project,
    record,
    role,
    schedule,
    spinner,
    usage,
    user,
    user_session,
)

__all__ = [
    "api_key",
    "callback_event",
    "data_table",
    "job",
    "journey",
    "organization",
    "project",
    "record",
    "role",
    "schedule",
    "spinner",
    "usage",
    "user",
    "user_session",
]
