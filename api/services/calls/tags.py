"""Saving a project's tags: every change is checked against the whole set and the scorecards."""

from __future__ import annotations

import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AppError
from models.call_analysis.scorecard import ScorecardDefinition
from models.call_analysis.scorecard_table import Scorecard, ScorecardVersion
from models.call_analysis.tags import AnyTag, CallTag, TagSetError, derived_order, tag_from_json


async def project_tags(session: AsyncSession, project_id: uuid.UUID) -> list[CallTag]:
    return list(
        (
            await session.exec(
                select(CallTag).where(CallTag.project_id == project_id).order_by(col(CallTag.name))
            )
        ).all()
    )


async def current_scorecards(
    session: AsyncSession, project_id: uuid.UUID
) -> list[tuple[Scorecard, ScorecardDefinition]]:
    rows = (
        await session.exec(
            select(Scorecard, ScorecardVersion)
            .join(
                ScorecardVersion,
                (col(ScorecardVersion.scorecard_id) == col(Scorecard.id))
                & (col(ScorecardVersion.version) == col(Scorecard.current_version)),
            )
            .where(Scorecard.project_id == project_id)
        )
    ).all()
    return [(card, ScorecardDefinition.model_validate(v.definition)) for card, v in rows]


async def check_tag_set(
    session: AsyncSession, project_id: uuid.UUID, tags: list[AnyTag], *, removing: bool = False
) -> None:
    """Refuse a set with unknown references or cycles (422), or one that drops a tag a derived
    tag or a scorecard still reads (409 TAG_IN_USE)."""
    try:
        derived_order(tags)
    except TagSetError as exc:
        if removing and exc.code == "TAG_UNKNOWN":
            raise AppError(exc.message, "TAG_IN_USE", 409) from None
        raise AppError(exc.message, exc.code, 422) from None
    names = [t.name for t in tags]
    for card, definition in await current_scorecards(session, project_id):
        try:
            definition.check_tags(names)
        except TagSetError as exc:
            raise AppError(
                f"Scorecard '{card.name}' still uses it: {exc.message}", "TAG_IN_USE", 409
            ) from None


def stored_tags(rows: list[CallTag]) -> list[AnyTag]:
    return [tag_from_json(r.definition) for r in rows]
