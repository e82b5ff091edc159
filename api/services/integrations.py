"""Integrations: per-kind validation, credentials in Vault, the in-use guard and "test connection"."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import openai
from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AppError
from api.services.unique_names import UniqueName
from infra import providers
from infra.vault import SecretNotFound, SecretStore
from models.base import utcnow
from models.channel import Channel
from models.integration import (
    KINDS,
    MOCK_KINDS,
    ConnectionTest,
    Integration,
    IntegrationCreate,
    IntegrationKind,
    IntegrationPublic,
    IntegrationSchema,
    IntegrationUpdate,
)

log = logging.getLogger(__name__)

# "Test connection" is interactive: a provider that has not answered by then counts as down.
PROBE_TIMEOUT_S = 15.0
INTEGRATION_NAMES = UniqueName(Integration, "An integration", "uq_integration_org_name")


def _invalid(where: str, exc: ValidationError) -> AppError:
    # Only locations and messages: pydantic's `input` would echo credential values back.
    problems = [
        {"field": ".".join([where, *(str(p) for p in err["loc"])]), "message": err["msg"]}
        for err in exc.errors()
    ]
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return AppError(f"Invalid request: {summary}", "VALIDATION_ERROR", 422, problems)


def _validated(
    model: type[IntegrationSchema], raw: Mapping[str, Any], where: str
) -> dict[str, Any]:
    try:
        return model.model_validate(dict(raw)).stored()
    except ValidationError as exc:
        raise _invalid(where, exc) from None


def validate_config(kind: IntegrationKind, raw: Mapping[str, Any]) -> dict[str, Any]:
    return _validated(KINDS[kind].config, raw, "config")


def validate_credentials(
    kind: IntegrationKind, raw: Mapping[str, Any] | None
) -> dict[str, str] | None:
    model = KINDS[kind].credentials
    if model is None:
        if raw:
            raise AppError(
                f"A {kind.value} integration takes no credentials", "VALIDATION_ERROR", 422
            )
        return None
    if raw is None:
        raise AppError(
            f"A {kind.value} integration needs credentials: "
            + ", ".join(sorted(model.model_fields)),
            "VALIDATION_ERROR",
            422,
        )
    return {k: str(v) for k, v in _validated(model, raw, "credentials").items()}


def integration_public(integration: Integration) -> IntegrationPublic:
    kind = IntegrationKind(integration.kind)
    return IntegrationPublic(
        id=integration.id,
        kind=integration.kind,
        name=integration.name,
        label=KINDS[kind].label,
        is_mock=kind in MOCK_KINDS,
        config=dict(integration.config or {}),
        credential_fields=list(integration.credential_fields or []),
        created_at=integration.created_at,
        updated_at=integration.updated_at,
    )


async def create_integration(
    session: AsyncSession, store: SecretStore, org_id: uuid.UUID, body: IntegrationCreate
) -> Integration:
    config = validate_config(body.kind, body.config)
    credentials = validate_credentials(body.kind, body.credentials)
    await INTEGRATION_NAMES.ensure_free(session, org_id, body.name, None)
    integration = Integration(org_id=org_id, kind=body.kind.value, name=body.name, config=config)
    if credentials is not None:
        integration.credentials_ref = store.credentials_path(org_id, integration.id)
        integration.credential_fields = sorted(credentials)
    session.add(integration)
    # The row first (its name may clash), Vault second: a Vault failure rolls the row back.
    await INTEGRATION_NAMES.flush(session, body.name)
    if credentials is not None:
        await store.write_credentials(org_id, integration.id, credentials)
    return integration


async def update_integration(
    session: AsyncSession, store: SecretStore, integration: Integration, body: IntegrationUpdate
) -> Integration:
    kind = IntegrationKind(integration.kind)
    config = validate_config(kind, body.config) if body.config is not None else None
    credentials = (
        validate_credentials(kind, body.credentials) if body.credentials is not None else None
    )
    if body.name is not None and body.name != integration.name:
        await INTEGRATION_NAMES.ensure_free(session, integration.org_id, body.name, integration.id)
        integration.name = body.name
    if config is not None:
        integration.config = config
    if credentials is not None:
        integration.credentials_ref = store.credentials_path(integration.org_id, integration.id)
        integration.credential_fields = sorted(credentials)
    integration.updated_at = utcnow()
    session.add(integration)
    await INTEGRATION_NAMES.flush(session, integration.name)
    if credentials is not None:
        await store.write_credentials(integration.org_id, integration.id, credentials)
    return integration


async def channels_using(session: AsyncSession, integration_id: uuid.UUID) -> int:
    count = (
        await session.exec(
            select(func.count())
            .select_from(Channel)
            .where(Channel.integration_id == integration_id)
        )
    ).one()
    return int(count)


async def delete_integration(
    session: AsyncSession, store: SecretStore, integration: Integration
) -> None:
    used = await channels_using(session, integration.id)
    if used:
        raise AppError(
            f"Integration '{integration.name}' is used by {used} channel(s); "
            "delete or move them first",
            "INTEGRATION_IN_USE",
            409,
        )
    await session.delete(integration)
    await session.flush()
    # After the row is gone from this transaction: if Vault fails, the request rolls back whole.
    if integration.credentials_ref is not None:
        await store.delete_credentials(integration.org_id, integration.id)


# --- test connection ----------------------------------------------------------------------------


async def check_connection(
    store: SecretStore, integration: Integration, guard: providers.ProviderGuard
) -> ConnectionTest:
    kind = IntegrationKind(integration.kind)
    creds: dict[str, str] = {}
    if KINDS[kind].credentials is not None:
        try:
            creds = await store.read_credentials(integration.org_id, integration.id)
        except SecretNotFound:
            return ConnectionTest(
                ok=False, detail="No credentials are stored; save the integration's credentials"
            )
    return await probe(kind, dict(integration.config or {}), creds, guard)


async def probe(
    kind: IntegrationKind,
    config: Mapping[str, Any],
    creds: Mapping[str, str],
    guard: providers.ProviderGuard,
) -> ConnectionTest:
    """Call a cheap read-only endpoint with the provider's own SDK. Never raises, never leaks.

    Details name the provider and the HTTP status only: provider messages may quote the key.
    """
    if kind == IntegrationKind.mock:
        return ConnectionTest(ok=True, detail="Mock LLM: nothing to connect to")
    if kind == IntegrationKind.mock_stt:
        return ConnectionTest(ok=True, detail="Mock speech-to-text: nothing to connect to")
    if kind == IntegrationKind.https:
        return ConnectionTest(ok=True, detail="HTTPS recordings: each URL is checked when read")
    name, call = _PROBES[kind]
    try:
        detail = await asyncio.wait_for(call(config, creds, guard), PROBE_TIMEOUT_S)
    except TimeoutError:
        return ConnectionTest(ok=False, detail=f"{name} did not answer within {PROBE_TIMEOUT_S:g}s")
    except _Refused as exc:
        return ConnectionTest(ok=False, detail=f"{name} {exc}")
    except providers.ProviderUrlBlocked as exc:
        return ConnectionTest(ok=False, detail=f"{name} was not called: {exc}")
    except ValueError as exc:
        # The provider factories reject a malformed base URL or a missing credential field.
        return ConnectionTest(ok=False, detail=f"{name} is not configured correctly: {exc}")
    except Exception as exc:  # noqa: BLE001 - any transport failure means "could not reach"
        log.info("%s connection test failed: %s", name, type(exc).__name__)
        return ConnectionTest(ok=False, detail=f"Could not reach {name} ({type(exc).__name__})")
    return ConnectionTest(ok=True, detail=detail)


class _Refused(Exception):
    """The provider answered with an error status."""


def _status_detail(status: int | None) -> str:
    if status in (401, 403):
        return f"rejected the credentials (HTTP {status})"
    return f"answered with an error (HTTP {status})"


async def _openai(
    config: Mapping[str, Any], creds: Mapping[str, str], guard: providers.ProviderGuard
) -> str:
    client = await providers.openai_client(config, creds, guard=guard)
    try:
        page = await client.models.list()
    except openai.APIStatusError as exc:
        raise _Refused(_status_detail(exc.status_code)) from None
    finally:
        await client.close()
    return f"Connected to OpenAI: {len(page.data)} models available"


async def _twilio(
    config: Mapping[str, Any], creds: Mapping[str, str], guard: providers.ProviderGuard
) -> str:
    from twilio.base.exceptions import TwilioRestException  # type: ignore[import-untyped]

    client = await providers.twilio_client(config, creds, guard=guard)

    def fetch() -> Any:
        return client.api.v2010.accounts(creds["account_sid"]).fetch()

    try:
        account = await asyncio.to_thread(fetch)
    except TwilioRestException as exc:
        raise _Refused(_status_detail(exc.status)) from None
    return f"Connected to Twilio: account status {account.status}"


async def _sendgrid(
    config: Mapping[str, Any], creds: Mapping[str, str], guard: providers.ProviderGuard
) -> str:
    from python_http_client.exceptions import HTTPError  # type: ignore[import-untyped]

    client = await providers.sendgrid_client(config, creds, guard=guard)
    # python_http_client waits forever by default; children built per path inherit this.
    client.client.timeout = PROBE_TIMEOUT_S

    def scopes() -> Any:
        return client.client.scopes.get()

    try:
        response = await asyncio.to_thread(scopes)
    except HTTPError as exc:
        raise _Refused(_status_detail(getattr(exc, "status_code", None))) from None
    return f"Connected to SendGrid (HTTP {response.status_code})"


async def _deepgram(
    config: Mapping[str, Any], creds: Mapping[str, str], guard: providers.ProviderGuard
) -> str:
    from deepgram.core.api_error import ApiError

    client = await providers.deepgram_client(config, creds, guard=guard)
    try:
        result = await client.manage.v1.projects.list()
    except ApiError as exc:
        raise _Refused(_status_detail(exc.status_code)) from None
    count = len(result.projects or [])
    return f"Connected to Deepgram: {count} project(s)"


async def _s3(
    config: Mapping[str, Any], creds: Mapping[str, str], guard: providers.ProviderGuard
) -> str:
    from botocore.exceptions import ClientError

    client = await providers.s3_client(config, creds, guard=guard)
    bucket = str(config.get("bucket"))
    try:
        await asyncio.to_thread(client.head_bucket, Bucket=bucket)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            raise _Refused(f"has no bucket {bucket!r} (HTTP 404)") from None
        raise _Refused(_status_detail(status)) from None
    return f"Connected to S3: bucket {bucket} is readable"


_PROBES: dict[
    IntegrationKind,
    tuple[
        str,
        Callable[[Mapping[str, Any], Mapping[str, str], providers.ProviderGuard], Awaitable[str]],
    ],
] = {
    IntegrationKind.openai: ("OpenAI", _openai),
    IntegrationKind.twilio: ("Twilio", _twilio),
    IntegrationKind.sendgrid: ("SendGrid", _sendgrid),
    IntegrationKind.deepgram: ("Deepgram", _deepgram),
    IntegrationKind.s3: ("S3 storage", _s3),
}
