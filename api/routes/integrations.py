"""Integrations: provider configurations whose credentials live in Vault, never in responses."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlmodel import col, select

from api.deps import Allow, Principal, ProviderGuardDep, SecretStoreDep, SessionDep
from api.errors import not_found
from api.services.integrations import (
    check_connection,
    create_integration,
    delete_integration,
    integration_public,
    update_integration,
)
from models.integration import (
    ConnectionTest,
    Integration,
    IntegrationCreate,
    IntegrationPublic,
    IntegrationsPublic,
    IntegrationUpdate,
)

router = APIRouter(prefix="/integrations", tags=["integrations"])
Read = Annotated[Principal, Allow("integrations.read")]
Write = Annotated[Principal, Allow("integrations.write")]


async def _in_org(integration_id: uuid.UUID, org_id: uuid.UUID, session: SessionDep) -> Integration:
    integration = await session.get(Integration, integration_id)
    if integration is None or integration.org_id != org_id:
        raise not_found("Integration")
    return integration


async def readable(integration_id: uuid.UUID, principal: Read, session: SessionDep) -> Integration:
    return await _in_org(integration_id, principal.org_id, session)


async def writable(integration_id: uuid.UUID, principal: Write, session: SessionDep) -> Integration:
    return await _in_org(integration_id, principal.org_id, session)


Readable = Annotated[Integration, Depends(readable)]
Writable = Annotated[Integration, Depends(writable)]


@router.get("")
async def list_integrations(principal: Read, session: SessionDep) -> IntegrationsPublic:
    rows = (
        await session.exec(
            select(Integration)
            .where(Integration.org_id == principal.org_id)
            .order_by(col(Integration.name))
        )
    ).all()
    return IntegrationsPublic(data=[integration_public(i) for i in rows], count=len(rows))


@router.post("", status_code=201)
async def create(
    body: IntegrationCreate, principal: Write, session: SessionDep, store: SecretStoreDep
) -> IntegrationPublic:
    integration = await create_integration(session, store, principal.org_id, body)
    return integration_public(integration)


@router.get("/{integration_id}")
async def get_integration(integration: Readable) -> IntegrationPublic:
    return integration_public(integration)


@router.patch("/{integration_id}")
async def update(
    body: IntegrationUpdate, integration: Writable, session: SessionDep, store: SecretStoreDep
) -> IntegrationPublic:
    return integration_public(await update_integration(session, store, integration, body))


@router.delete("/{integration_id}", status_code=204)
async def delete(integration: Writable, session: SessionDep, store: SecretStoreDep) -> None:
    await delete_integration(session, store, integration)


# It makes a call out with the stored credentials, so it takes the same permission as editing.
@router.post("/{integration_id}/test")
async def test_integration(
    integration: Writable, store: SecretStoreDep, guard: ProviderGuardDep
) -> ConnectionTest:
    return await check_connection(store, integration, guard)
