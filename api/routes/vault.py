"""Organization secrets in Vault: listed masked, written (new version) and deleted, never read back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func
from sqlmodel import col, select

from api.deps import Allow, Principal, SecretStoreDep, SessionDep
from api.errors import AppError, error_body, not_found
from infra.vault import SecretNotFound, SecretVersionConflict
from models.vault_audit import (
    SECRET_NAME_PATTERN,
    SecretPublic,
    SecretsPublic,
    SecretWrite,
    VaultAction,
    VaultAuditEntry,
    VaultAuditPublic,
    VaultAuditsPublic,
)

router = APIRouter(prefix="/vault", tags=["vault"])
Read = Annotated[Principal, Allow("vault.read")]
Write = Annotated[Principal, Allow("vault.write")]
Name = Annotated[str, Path(pattern=SECRET_NAME_PATTERN, description="letters, digits, _ . -")]
MAX_AUDIT_PAGE = 500


async def vault_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """The one translation of VaultUnavailable at the edge: 503, nothing about the secret."""
    return JSONResponse(
        error_body(f"Secrets are unavailable right now: {exc}", "VAULT_UNAVAILABLE"), 503
    )


def _checked(name: str) -> str:
    if set(name) == {"."}:
        raise AppError("A secret name cannot be only dots", "VALIDATION_ERROR", 422)
    return name


@router.get("/secrets")
async def list_secrets(
    principal: Read, session: SessionDep, store: SecretStoreDep
) -> SecretsPublic:
    infos = await store.list_secrets(principal.org_id)
    latest = (
        select(VaultAuditEntry.name, VaultAuditEntry.user_id)
        .distinct(col(VaultAuditEntry.name))
        .where(VaultAuditEntry.org_id == principal.org_id)
        .order_by(col(VaultAuditEntry.name), col(VaultAuditEntry.created_at).desc())
    )
    by = dict((await session.exec(latest)).all())
    data = [
        SecretPublic(
            name=i.name, version=i.version, updated_at=i.updated_at, updated_by=by.get(i.name)
        )
        for i in infos
    ]
    return SecretsPublic(data=data, count=len(data))


@router.put("/secrets/{name}")
async def write_secret(
    name: Name,
    body: SecretWrite,
    principal: Write,
    session: SessionDep,
    store: SecretStoreDep,
    response: Response,
) -> SecretPublic:
    _checked(name)
    try:
        info = await store.write_secret(principal.org_id, name, body.value, cas=body.cas)
    except SecretVersionConflict as exc:
        raise AppError(str(exc), "VERSION_CONFLICT", 409) from None
    # Vault restarts at version 1 after a delete, so version 1 is always a creation.
    action = VaultAction.create if info.version == 1 else VaultAction.update
    # Vault has no transaction with Postgres: the audit row follows a write that succeeded.
    session.add(
        VaultAuditEntry(
            org_id=principal.org_id,
            user_id=principal.user.id,
            action=action,
            name=name,
            version=info.version,
        )
    )
    response.status_code = 201 if action == VaultAction.create else 200
    return SecretPublic(
        name=name, version=info.version, updated_at=info.updated_at, updated_by=principal.user.id
    )


@router.delete("/secrets/{name}", status_code=204)
async def delete_secret(
    name: Name, principal: Write, session: SessionDep, store: SecretStoreDep
) -> None:
    _checked(name)
    try:
        version = await store.delete_secret(principal.org_id, name)
    except SecretNotFound:
        raise not_found("Secret") from None
    session.add(
        VaultAuditEntry(
            org_id=principal.org_id,
            user_id=principal.user.id,
            action=VaultAction.delete,
            name=name,
            version=version,
        )
    )


@router.get("/audit")
async def audit(
    principal: Read,
    session: SessionDep,
    name: Annotated[str | None, Query(pattern=SECRET_NAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 100,
) -> VaultAuditsPublic:
    where = [VaultAuditEntry.org_id == principal.org_id]
    if name is not None:
        where.append(VaultAuditEntry.name == name)
    total = (
        await session.exec(select(func.count()).select_from(VaultAuditEntry).where(*where))
    ).one()
    rows = (
        await session.exec(
            select(VaultAuditEntry)
            .where(*where)
            .order_by(col(VaultAuditEntry.created_at).desc(), col(VaultAuditEntry.id))
            .limit(limit)
        )
    ).all()
    return VaultAuditsPublic(
        data=[VaultAuditPublic.model_validate(r) for r in rows], count=int(total)
    )
