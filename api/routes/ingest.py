"""Public ingest: a table's webhook (token in the path) and organization-key ingest."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from sqlmodel import select

from api.deps import KeyPrincipal, PublicRoute, RequireApiKey, SessionDep, SettingsDep
from api.errors import not_found
from api.number_text import NumberTextRoute
from api.services.ingest import ingest
from api.services.throttle import limit_public, org_plan
from infra.security import token_hash
from models.data_table import DataTable, IngestBody, IngestResult, KeyIngestBody
from models.fields import SafeStr

# Numbers keep their JSON text: see api.number_text.
router = APIRouter(prefix="/public", tags=["ingest"], route_class=NumberTextRoute)
IngestKey = Annotated[KeyPrincipal, Depends(RequireApiKey("ingest"))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Repeat a request safely: the same key and body replay the first answer (24 h)",
    ),
]
WEBHOOK_TOKEN_PREFIX = "cxw_"


async def webhook_table(
    token: SafeStr, request: Request, session: SessionDep, settings: SettingsDep
) -> DataTable:
    if not token.startswith(WEBHOOK_TOKEN_PREFIX):
        raise not_found("Ingest webhook")
    digest = token_hash(settings.secret_key.get_secret_value(), token)
    table = (
        await session.exec(select(DataTable).where(DataTable.ingest_token_hash == digest))
    ).first()
    if table is None:
        raise not_found("Ingest webhook")
    await limit_public(
        request, settings, f"ingest-webhook:{table.id}", await org_plan(session, table.org_id)
    )
    return table


WebhookTable = Annotated[DataTable, Depends(webhook_table)]


@router.post("/data-tables/ingest/{token}", dependencies=[Depends(PublicRoute())])
async def webhook_ingest(
    table: WebhookTable,
    body: IngestBody,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> IngestResult:
    """Append 1–500 records with exactly the table's columns; the token in the path is the secret."""
    return await ingest(
        session,
        table,
        body.records,
        idempotency_key=idempotency_key,
        ttl=settings.ingest_idempotency_ttl,
    )


@router.post("/ingest")
async def key_ingest(
    key: IngestKey,
    body: KeyIngestBody,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> IngestResult:
    """Append 1–500 records to a table of the key's organization (`ingest` scope)."""
    table = await session.get(DataTable, body.data_table_id)
    if table is None or table.org_id != key.org_id:
        raise not_found("Data table")
    return await ingest(
        session,
        table,
        body.records,
        idempotency_key=idempotency_key,
        ttl=settings.ingest_idempotency_ttl,
    )
