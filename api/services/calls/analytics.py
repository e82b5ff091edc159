"""Call analytics over 7/30/90 days: SQL roll-ups of analysed calls (overrides applied, since
they read the `final_*` columns), answered from the covering indexes of the migration."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from models.call_analysis.analytics import (
    AgentFigures,
    BandCounts,
    CallAnalyticsPublic,
    DayFigures,
    TagFigures,
)

TOP_TAGS = 10
TOP_AGENTS = 50

_DAILY = """
SELECT (occurred_at AT TIME ZONE :tz)::date AS day,
       count(*) AS calls,
       sum(final_percent) AS percent_sum,
       count(final_percent) AS graded,
       sum(final_score) AS score_sum,
       count(*) FILTER (WHERE final_band = 'good') AS good,
       count(*) FILTER (WHERE final_band = 'fair') AS fair,
       count(*) FILTER (WHERE final_band = 'poor') AS poor
FROM analysed_call WHERE {where}
GROUP BY 1 ORDER BY 1
"""
_AGENTS = """
SELECT agent, count(*) AS calls, avg(final_percent) AS average_percent
FROM analysed_call WHERE {where} AND agent IS NOT NULL
GROUP BY agent ORDER BY calls DESC, agent LIMIT :agents
"""
_TAGS = """
SELECT tag, count(*) AS calls
FROM analysed_call, unnest(hit_tags) AS tag WHERE {where}
GROUP BY tag ORDER BY calls DESC, tag LIMIT :tags
"""


def _avg(total: float | None, n: int) -> float | None:
    return round(total / n, 2) if n and total is not None else None


async def call_analytics(
    conn: AsyncConnection,
    org_id: uuid.UUID,
    *,
    days: int,
    project_id: uuid.UUID | None = None,
    timezone: str = "UTC",
) -> CallAnalyticsPublic:
    since = datetime.now(UTC) - timedelta(days=days)
    where = "org_id = :org AND occurred_at >= :since"
    if project_id is not None:
        where += " AND project_id = :project"
    params = {
        "org": org_id,
        "since": since,
        "project": project_id,
        "tz": timezone,
        "agents": TOP_AGENTS,
        "tags": TOP_TAGS,
    }
    daily_rows = (await conn.execute(text(_DAILY.format(where=where)), params)).all()
    agents = (await conn.execute(text(_AGENTS.format(where=where)), params)).all()
    tags = (await conn.execute(text(_TAGS.format(where=where)), params)).all()
    calls = sum(r.calls for r in daily_rows)
    graded = sum(r.graded for r in daily_rows)
    percent_sum = sum(r.percent_sum or 0.0 for r in daily_rows)
    score_sum = sum(r.score_sum or 0 for r in daily_rows)
    bands = BandCounts(
        good=sum(r.good for r in daily_rows),
        fair=sum(r.fair for r in daily_rows),
        poor=sum(r.poor for r in daily_rows),
    )
    return CallAnalyticsPublic(
        days=days,
        since=since,
        timezone=timezone,
        calls=calls,
        average_percent=_avg(percent_sum, graded),
        average_score=_avg(float(score_sum), graded),
        bands=bands,
        ungraded=calls - bands.good - bands.fair - bands.poor,
        daily=[
            DayFigures(day=r.day, calls=r.calls, average_percent=_avg(r.percent_sum, r.graded))
            for r in daily_rows
        ],
        top_tags=[TagFigures(tag=r.tag, calls=r.calls) for r in tags],
        agents=[
            AgentFigures(
                agent=r.agent,
                calls=r.calls,
                average_percent=None if r.average_percent is None else round(r.average_percent, 2),
            )
            for r in agents
        ],
    )
