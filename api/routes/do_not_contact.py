"""The organization's do-not-contact list: filled by STOP replies, unsubscribes, bounces and people."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import func
from sqlmodel import col, select

from api.deps import Allow, Principal, SessionDep
from api.errors import AppError, not_found
from models.do_not_contact import (
    DoNotContact,
    DoNotContactCreate,
    DoNotContactPublic,
    DoNotContactReason,
    DoNotContactRemove,
    DoNotContactsPublic,
    add_to_do_not_contact,
)
from models.fields import Cursor

router = APIRouter(prefix="/do-not-contact", tags=["do not contact"])
Read = Annotated[Principal, Allow("integrations.read")]
Write = Annotated[Principal, Allow("integrations.write")]
MAX_PAGE = 500


async def _entry(session: SessionDep, principal: Principal, address: str) -> DoNotContact | None:
    return (
        await session.exec(
            select(DoNotContact).where(
                DoNotContact.org_id == principal.org_id, DoNotContact.address == address
            )
        )
    ).first()


@router.get("")
async def list_entries(
    principal: Read,
    session: SessionDep,
    before: Cursor | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> DoNotContactsPublic:
    mine = DoNotContact.org_id == principal.org_id
    total = (await session.exec(select(func.count()).select_from(DoNotContact).where(mine))).one()
    stmt = select(DoNotContact).where(mine)
    if before is not None:
        stmt = stmt.where(col(DoNotContact.id) < before)
    rows = (await session.exec(stmt.order_by(col(DoNotContact.id).desc()).limit(limit))).all()
    return DoNotContactsPublic(
        data=[DoNotContactPublic.model_validate(r) for r in rows],
        count=int(total),
        next_before=rows[-1].id if len(rows) == limit else None,
    )


@router.post("")
async def add_entry(
    body: DoNotContactCreate, principal: Write, session: SessionDep, response: Response
) -> DoNotContactPublic:
    """Idempotent: adding a listed address again keeps the first entry (and its reason): 200."""
    source = body.source or f"added by {principal.user.email}"
    added = await add_to_do_not_contact(
        session, principal.org_id, body.address, DoNotContactReason.manual, source
    )
    entry = await _entry(session, principal, body.address)
    if entry is None:
        # Only if someone deleted it between the insert and this read: report, don't pretend.
        raise AppError("The address was removed meanwhile; add it again", "CONFLICT", 409)
    response.status_code = 201 if added else 200
    return DoNotContactPublic.model_validate(entry)


@router.post("/remove", status_code=204)
async def remove_entry(body: DoNotContactRemove, principal: Write, session: SessionDep) -> None:
    """Take an address off the list. A POST with a body so the address stays out of URLs (and so
    out of access logs and proxies'); 404 if the organization does not list it."""
    entry = await _entry(session, principal, body.address)
    if entry is None:
        raise not_found("Address")
    await session.delete(entry)
