"""Imports every table module so metadata is complete for Alembic and tests."""

from models import api_key, organization, project, role, usage, user, user_session

__all__ = ["api_key", "organization", "project", "role", "usage", "user", "user_session"]
