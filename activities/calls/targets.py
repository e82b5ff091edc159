"""The integrations a call step names, looked up within the record's organization only."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError

from infra.vault import SecretNotFound, SecretStore, VaultUnavailable


def permanent(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


@dataclass(frozen=True)
class Target:
    org_id: uuid.UUID
    integration_id: uuid.UUID
    kind: str
    config: dict[str, Any]


async def record_org(engine: AsyncEngine, record_id: int) -> uuid.UUID:
    async with engine.connect() as conn:
        org_id = (
            await conn.execute(text("select org_id from record where id = :id"), {"id": record_id})
        ).scalar_one_or_none()
    if org_id is None:
        raise permanent(f"record {record_id} not found", "RecordNotFound")
    return uuid.UUID(str(org_id))


async def load_target(
    engine: AsyncEngine,
    record_id: int,
    raw: object,
    *,
    kinds: Collection[str],
    step_id: str,
    what: str,
) -> Target:
    """The integration `raw` names if it belongs to the record's organization and is of `kinds`."""
    try:
        integration_id = uuid.UUID(str(raw))
    except ValueError:
        raise permanent(
            f"step {step_id}: {what} integration {raw!r} not found", "IntegrationNotFound"
        ) from None
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "select i.kind, i.config, i.org_id from integration i"
                    " join record r on r.org_id = i.org_id"
                    " where r.id = :record and i.id = :integration"
                ),
                {"record": record_id, "integration": integration_id},
            )
        ).first()
    if row is None:
        raise permanent(
            f"step {step_id}: {what} integration {integration_id} not found", "IntegrationNotFound"
        )
    if row.kind not in kinds:
        raise permanent(
            f"step {step_id}: integration {integration_id} is a {row.kind} integration, not "
            f"{what} ({' or '.join(sorted(kinds))})",
            "IntegrationKind",
        )
    return Target(row.org_id, integration_id, str(row.kind), dict(row.config or {}))


async def credentials(secrets: SecretStore, target: Target) -> dict[str, Any]:
    try:
        return await secrets.read_credentials(target.org_id, target.integration_id)
    except VaultUnavailable as exc:
        # Retryable: Vault being down must not fail the analysis.
        raise ApplicationError(f"Vault unavailable: {exc}", type="VaultUnavailable") from None
    except SecretNotFound:
        raise permanent(
            f"integration {target.integration_id} has no credentials in Vault", "Credentials"
        ) from None
