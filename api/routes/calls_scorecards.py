"""QA scorecards of a call_analyzer project: each publish is a new immutable version."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import Allow, Principal, SessionDep
from api.errors import AppError, not_found
from api.services.calls.projects import QaProject, ReadableCallProject, call_project
from api.services.calls.tags import project_tags
from models.call_analysis.scorecard import ScorecardDefinition
from models.call_analysis.scorecard_table import (
    Scorecard,
    ScorecardCreate,
    ScorecardPublic,
    ScorecardPublish,
    ScorecardsPublic,
    ScorecardVersion,
    ScorecardVersionsPublic,
    version_public,
)
from models.call_analysis.tags import TagSetError
from models.project import Project

router = APIRouter(tags=["call analysis"])
QaP = Annotated[Principal, Allow("pca.qa")]
ReadP = Annotated[Principal, Allow("projects.read")]


async def _checked(
    session: AsyncSession, project: Project, body: ScorecardDefinition
) -> dict[str, Any]:
    try:
        body.check_tags([t.name for t in await project_tags(session, project.id)])
    except TagSetError as exc:
        raise AppError(exc.message, exc.code, 422) from None
    return ScorecardDefinition.model_validate(
        body.model_dump(mode="json", include={"questions", "bundles"})
    ).model_dump(mode="json")


async def _version(session: AsyncSession, card: Scorecard, number: int) -> ScorecardVersion:
    row = (
        await session.exec(
            select(ScorecardVersion).where(
                ScorecardVersion.scorecard_id == card.id, ScorecardVersion.version == number
            )
        )
    ).one()
    return row


async def card_public(session: AsyncSession, card: Scorecard) -> ScorecardPublic:
    current = await _version(session, card, card.current_version)
    return ScorecardPublic(
        id=card.id,
        project_id=card.project_id,
        name=card.name,
        current_version=card.current_version,
        created_at=card.created_at,
        updated_at=card.updated_at,
        current=version_public(current),
    )


async def _card(
    session: AsyncSession, principal: Principal, scorecard_id: uuid.UUID, *, lock: bool = False
) -> tuple[Scorecard, Project]:
    card = await session.get(Scorecard, scorecard_id)
    if card is None or card.org_id != principal.org_id:
        raise not_found("Scorecard")
    return card, await call_project(card.project_id, principal, session, lock=lock)


async def readable_card(
    scorecard_id: uuid.UUID, principal: ReadP, session: SessionDep
) -> tuple[Scorecard, Project]:
    return await _card(session, principal, scorecard_id)


async def publishable_card(
    scorecard_id: uuid.UUID, principal: QaP, session: SessionDep
) -> tuple[Scorecard, Project]:
    return await _card(session, principal, scorecard_id, lock=True)


# Dependencies, so another organization's id is a 404 before the body is even looked at.
ReadableCard = Annotated[tuple[Scorecard, Project], Depends(readable_card)]
PublishableCard = Annotated[tuple[Scorecard, Project], Depends(publishable_card)]


@router.post("/projects/{project_id}/scorecards", status_code=201)
async def create_scorecard(
    project: QaProject, body: ScorecardCreate, principal: QaP, session: SessionDep
) -> ScorecardPublic:
    definition = await _checked(session, project, body)
    card = Scorecard(org_id=project.org_id, project_id=project.id, name=body.name)
    session.add(card)
    await session.flush()
    session.add(
        ScorecardVersion(
            scorecard_id=card.id, version=1, definition=definition, created_by=principal.user.id
        )
    )
    await session.flush()
    return await card_public(session, card)


@router.get("/projects/{project_id}/scorecards")
async def list_scorecards(project: ReadableCallProject, session: SessionDep) -> ScorecardsPublic:
    cards = (
        await session.exec(
            select(Scorecard)
            .where(Scorecard.project_id == project.id)
            .order_by(col(Scorecard.created_at))
        )
    ).all()
    return ScorecardsPublic(data=[await card_public(session, c) for c in cards], count=len(cards))


@router.get("/scorecards/{scorecard_id}")
async def get_scorecard(found: ReadableCard, session: SessionDep) -> ScorecardPublic:
    return await card_public(session, found[0])


@router.post("/scorecards/{scorecard_id}/versions", status_code=201)
async def publish_scorecard(
    found: PublishableCard, body: ScorecardPublish, principal: QaP, session: SessionDep
) -> ScorecardPublic:
    """Publish a new version; analyses from now on use it, stored results keep theirs."""
    card, project = found
    definition = await _checked(session, project, body)
    card.current_version += 1
    card.updated_at = datetime.now(UTC)
    if body.name is not None:
        card.name = body.name
    session.add(card)
    session.add(
        ScorecardVersion(
            scorecard_id=card.id,
            version=card.current_version,
            definition=definition,
            created_by=principal.user.id,
        )
    )
    await session.flush()
    return await card_public(session, card)


@router.get("/scorecards/{scorecard_id}/versions")
async def list_scorecard_versions(
    found: ReadableCard, session: SessionDep
) -> ScorecardVersionsPublic:
    card = found[0]
    rows = (
        await session.exec(
            select(ScorecardVersion)
            .where(ScorecardVersion.scorecard_id == card.id)
            .order_by(col(ScorecardVersion.version).desc())
        )
    ).all()
    return ScorecardVersionsPublic(data=[version_public(r) for r in rows], count=len(rows))
