"""The `whatsapp` and `sms` steps: one Twilio message per record and step, never two.

Exactly-once: the send ledger row (key `{workflow_id}:{step_id}`) is committed as `pending`
before Twilio is called. A later attempt that finds it `accepted` returns the stored result; one
that finds it `pending` (the previous attempt died during or after the call) asks Twilio whether
the message went out before sending again. Twilio has no idempotency key of its own.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError
from twilio.base.exceptions import TwilioRestException  # type: ignore[import-untyped]

from activities.plans import PlanCache, StepRun
from activities.steps import render
from infra.providers import ProviderGuard, twilio_client
from infra.vault import SecretNotFound, SecretStore, VaultUnavailable
from models.channel import WHATSAPP_PREFIX, Channel
from models.do_not_contact import is_do_not_contact
from models.integration import Integration
from models.record import Record
from models.send_ledger import (
    LedgerRow,
    SendProvider,
    SendStatus,
    claim_send,
    claimed_message_ids,
    find_send,
    ledger_key,
    mark_send,
    mask_address,
)
from workflows.contracts import StepInput, StepResult

STATUS_PATH = "/api/v1/webhooks/twilio/status"
# Clock skew between us and the provider when looking for a send a dead attempt made.
RECONCILE_SLACK = timedelta(minutes=1)
LABELS = {"sms": "SMS", "whatsapp": "WhatsApp", "email": "Email"}
DEFAULT_LIST_LAG = timedelta(seconds=60)


@dataclass
class SendTarget:
    org_id: uuid.UUID
    channel: Channel
    integration: Integration


def _tables(model: type[Any]) -> Any:
    return model.__table__


def fail(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


async def load_target(engine: AsyncEngine, run: StepRun, kind: str) -> SendTarget:
    """The record's org, and the step's channel in that org with its integration."""
    step_id = run.step["id"]
    try:
        channel_id = uuid.UUID(str(run.step.get("channel_id")))
    except ValueError:
        raise fail(
            f"step {step_id}: channel {run.step.get('channel_id')!r} not found", "Channel"
        ) from None
    records, channels, integrations = _tables(Record), _tables(Channel), _tables(Integration)
    async with engine.connect() as conn:
        org_id = (
            await conn.execute(select(records.c.org_id).where(records.c.id == run.record_id))
        ).scalar_one_or_none()
        if org_id is None:
            raise fail(f"record {run.record_id} not found", "Record")
        # Scoped by the record's org: another org's channel id is "not found", never used.
        found = (
            (
                await conn.execute(
                    select(channels).where(channels.c.id == channel_id, channels.c.org_id == org_id)
                )
            )
            .mappings()
            .first()
        )
        linked = (
            None
            if found is None
            else (
                await conn.execute(
                    select(integrations).where(integrations.c.id == found["integration_id"])
                )
            )
            .mappings()
            .first()
        )
    if found is None or linked is None:
        raise fail(f"step {step_id}: channel {channel_id} not found", "Channel")
    channel, integration = Channel(**found), Integration(**linked)
    if channel.kind != kind:
        raise fail(
            f"step {step_id}: channel {channel.name!r} is a {channel.kind} channel, not {kind}",
            "Channel",
        )
    return SendTarget(org_id, channel, integration)


async def read_credentials(secrets: SecretStore, target: SendTarget) -> dict[str, str]:
    try:
        return await secrets.read_credentials(target.org_id, target.integration.id)
    except VaultUnavailable as exc:
        # Retryable: Vault being down must not fail a campaign.
        raise ApplicationError(f"Vault unavailable: {exc}", type="VaultUnavailable") from exc
    except SecretNotFound as exc:
        raise fail(
            f"integration {target.integration.name!r} has no credentials", "Credentials"
        ) from exc


def misconfigured(target: SendTarget, exc: ValueError) -> ApplicationError:
    """A bad base URL or credential field: the message names fields and hosts, never values."""
    return fail(
        f"integration {target.integration.name!r} is misconfigured: {exc}", "IntegrationConfig"
    )


def e164(step_id: str, raw: str) -> str:
    """The rendered `to` as E.164, or a non-retryable error naming only a masked number."""
    value = raw.strip()
    if value.lower().startswith(WHATSAPP_PREFIX):
        value = value[len(WHATSAPP_PREFIX) :].strip()
    try:
        number = phonenumbers.parse(value, None)
        valid = phonenumbers.is_valid_number(number)
    except phonenumbers.NumberParseException:
        valid = False
    if not valid:
        shown = mask_address(value) if value else "(empty)"
        raise fail(
            f"step {step_id}: {shown} is not a valid international phone number (E.164, +…)",
            "InvalidAddress",
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def opted_out(run: StepRun, label: str, address: str) -> StepResult:
    return StepResult(
        run.step["id"],
        run.step["type"],
        outcome="opted_out",
        outputs={"disposition": "Opted out"},
        messages=[f"{label} not sent: {mask_address(address)} is on the do-not-contact list"],
        next=None,
        label="opted_out",
    )


def sent_result(run: StepRun, row: LedgerRow, channel_name: str, *, status: str) -> StepResult:
    label = LABELS.get(run.step["type"], run.step["type"])
    sandboxed = row.provider == SendProvider.sandbox
    verb = "recorded (sandbox, not sent)" if sandboxed else "sent"
    return StepResult(
        run.step["id"],
        run.step["type"],
        outcome="sandboxed" if sandboxed else "sent",
        outputs={"message_id": row.provider_message_id, "message_status": status},
        messages=[f"{label} {verb} via {channel_name} to {mask_address(row.to_address)}"],
        next=run.step.get("next"),
    )


async def accept_send(
    engine: AsyncEngine,
    run: StepRun,
    row: LedgerRow,
    channel_name: str,
    message_id: str,
    *,
    status: str,
    reconciled: bool = False,
) -> StepResult:
    """The provider has the message: the ledger row turns `accepted` and the step is sent."""
    await mark_send(engine, row.key, SendStatus.accepted, message_id)
    if reconciled:
        activity.logger.info(
            "record %s step %s: found the earlier send %s, not sending again",
            run.record_id,
            run.step["id"],
            message_id,
        )
    row.provider_message_id, row.status = message_id, SendStatus.accepted.value
    return sent_result(run, row, channel_name, status=status)


def check_list_settled(row: LedgerRow, list_lag: timedelta, provider: str) -> None:
    """Providers' message lists are eventually consistent: until `list_lag` has passed since the
    earlier attempt claimed the send, an empty answer does not prove it never went out. Retry
    then, instead of sending a second message."""
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    wait = created + list_lag - datetime.now(UTC)
    if wait > timedelta(0):
        raise ApplicationError(
            f"an earlier attempt may have reached {provider}, whose message list can lag: "
            f"looking again in {wait.total_seconds():.0f} s",
            type="SendNotSettled",
            next_retry_delay=wait,
        )


async def prior_result(
    engine: AsyncEngine, run: StepRun, key: str, channel_name: str, label: str, status: str
) -> tuple[StepResult | None, LedgerRow | None]:
    """What an earlier attempt of this step left: a finished result, or a row to reconcile."""
    async with engine.connect() as conn:
        row = await find_send(conn, key)
    if row is None:
        return None, None
    if row.status == SendStatus.accepted:
        return sent_result(run, row, channel_name, status=status), row
    if row.status == SendStatus.skipped:
        return opted_out(run, label, row.to_address), row
    return None, row


async def claim_or_resume(
    engine: AsyncEngine,
    run: StepRun,
    target: SendTarget,
    key: str,
    to: str,
    provider: SendProvider,
    label: str,
    accepted_status: str,
) -> tuple[StepResult | None, LedgerRow, bool]:
    """Claims the ledger row before any provider call.

    Returns a finished result when nothing must be sent (an earlier attempt sent it, the channel
    is a sandbox, the address opted out), else whether an earlier attempt may have reached the
    provider already (a `pending` row it left), in which case the caller reconciles first.
    """
    channel = target.channel
    done, prior = await prior_result(engine, run, key, channel.name, label, accepted_status)
    if prior is not None:
        return done, prior, done is None
    async with engine.connect() as conn:
        blocked = await is_do_not_contact(conn, target.org_id, to)
    row, created = await claim_send(
        engine,
        org_id=target.org_id,
        key=key,
        record_id=run.record_id,
        step_id=run.step["id"],
        channel_id=channel.id,
        provider=(SendProvider.sandbox if channel.sandbox else provider).value,
        to_address=to,
        status=(
            SendStatus.skipped
            if blocked
            else SendStatus.accepted
            if channel.sandbox
            else SendStatus.pending
        ),
        provider_message_id=f"sandbox-{uuid.uuid4()}" if channel.sandbox and not blocked else None,
    )
    if row.status == SendStatus.skipped:
        return opted_out(run, label, row.to_address), row, False
    if row.status == SendStatus.accepted:
        return sent_result(run, row, channel.name, status=accepted_status), row, False
    return None, row, not created


class MessagingActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        secrets: SecretStore,
        *,
        public_api_url: str,
        plans: PlanCache,
        provider_guard: ProviderGuard,
        list_lag: timedelta = DEFAULT_LIST_LAG,
    ) -> None:
        self.engine = engine
        self.secrets = secrets
        self.public_api_url = public_api_url.rstrip("/")
        self.plans = plans
        self.provider_guard = provider_guard
        self.list_lag = list_lag

    @activity.defn
    async def send_message(self, inp: StepInput) -> StepResult:
        return await self.send(await self.plans.step_run(inp))

    async def send(self, run: StepRun) -> StepResult:
        step = run.step
        kind = step["type"]
        label = LABELS[kind]
        target = await load_target(self.engine, run, kind)
        channel = target.channel
        to = e164(step["id"], render(run, step.get("to") or "{{phone}}"))
        body: str | None = None
        variables: dict[str, str] = {}
        if step.get("template_sid"):
            variables = {
                str(k): render(run, str(v))
                for k, v in (step.get("template_variables") or {}).items()
            }
        else:
            body = render(run, step.get("body") or "")
        key = ledger_key(run.workflow_id, step["id"])

        # Before the claim: a base URL the guard refuses leaves no ledger row behind.
        creds = await read_credentials(self.secrets, target)
        try:
            client = await twilio_client(
                target.integration.config, creds, guard=self.provider_guard
            )
        except ValueError as exc:
            raise misconfigured(target, exc) from None
        done, row, reconcile = await claim_or_resume(
            self.engine, run, target, key, to, SendProvider.twilio, label, "queued"
        )
        if done is not None:
            return done

        prefix = WHATSAPP_PREFIX if kind == "whatsapp" else ""
        params: dict[str, Any] = {
            "to": prefix + to,
            "from_": prefix + channel.sender,
            "status_callback": self.public_api_url + STATUS_PATH,
        }
        if body is not None:
            params["body"] = body
        else:
            params["content_sid"] = step["template_sid"]
            params["content_variables"] = json.dumps(variables)

        if reconcile:
            check_list_settled(row, self.list_lag, "Twilio")
            found = await self._already_sent(client, params, row)
            if found is not None:
                return await accept_send(
                    self.engine, run, row, channel.name, found, status="queued", reconciled=True
                )

        try:
            message = await asyncio.to_thread(lambda: client.messages.create(**params))
        except TwilioRestException as exc:
            retryable = exc.status == 429 or exc.status >= 500
            if not retryable:
                await mark_send(self.engine, key, SendStatus.failed)
            raise ApplicationError(
                f"Twilio refused the {label} to {mask_address(to)}: "
                f"HTTP {exc.status} (code {exc.code})",
                type=f"Twilio{exc.status}",
                non_retryable=not retryable,
            ) from exc
        except Exception as exc:  # connection reset, timeout: the ledger makes the retry safe
            raise ApplicationError(
                f"Twilio unreachable sending to {mask_address(to)}: {type(exc).__name__}",
                type="TwilioUnavailable",
            ) from exc
        return await accept_send(
            self.engine,
            run,
            row,
            channel.name,
            str(message.sid),
            status=str(message.status or "queued"),
        )

    async def _already_sent(
        self, client: Any, params: dict[str, Any], row: LedgerRow
    ) -> str | None:
        """The sid of a message an earlier attempt got accepted, if Twilio has one."""
        since = row.created_at - RECONCILE_SLACK

        def listing() -> list[Any]:
            return list(
                client.messages.list(
                    to=params["to"], from_=params["from_"], date_sent_after=since, limit=50
                )
            )

        try:
            messages = await asyncio.to_thread(listing)
        except Exception as exc:
            raise ApplicationError(
                f"could not check Twilio for an earlier send: {type(exc).__name__}",
                type="TwilioUnavailable",
            ) from exc
        # Template sends: the list shows the rendered text, not the content sid, so any message
        # to this contact from this sender in the window counts.
        candidates = [
            str(m.sid) for m in messages if "body" not in params or (m.body or "") == params["body"]
        ]
        taken = await claimed_message_ids(self.engine, candidates, row.key)
        return next((sid for sid in candidates if sid not in taken), None)
