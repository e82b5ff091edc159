"""The answer of the call analytics routes."""

from __future__ import annotations

from datetime import date, datetime

from models.base import PublicModel


class BandCounts(PublicModel):
    good: int
    fair: int
    poor: int


class DayFigures(PublicModel):
    day: date
    calls: int
    # The day's average score as a percentage of the scorecard's maximum (null: none graded).
    average_percent: float | None


class TagFigures(PublicModel):
    tag: str
    calls: int


class AgentFigures(PublicModel):
    agent: str
    calls: int
    average_percent: float | None


class CallAnalyticsPublic(PublicModel):
    days: int
    since: datetime
    # Days are counted in this time zone (the project's; UTC across projects).
    timezone: str
    calls: int
    average_percent: float | None
    # Average points scored (supervisors' overrides applied).
    average_score: float | None
    bands: BandCounts
    ungraded: int
    daily: list[DayFigures]
    top_tags: list[TagFigures]
    agents: list[AgentFigures]
