"""The `email` step: one SendGrid message per record and step, never two.

Same ledger protocol as activities/messaging.py. The ledger key travels in the mail's
`custom_args` (`cx_key`), which SendGrid's Email Activity search can find, so a `pending` row
left by a dead attempt is reconciled by asking SendGrid before sending again. The key also comes
back on every Event Webhook event, which is how the webhook finds the record.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

from python_http_client.exceptions import HTTPError  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.messaging import (
    DEFAULT_LIST_LAG,
    LABELS,
    accept_send,
    check_list_settled,
    claim_or_resume,
    fail,
    load_target,
    misconfigured,
    read_credentials,
)
from activities.plans import PlanCache, StepRun
from activities.steps import render
from infra.providers import ProviderGuard, sendgrid_client
from infra.vault import SecretStore
from models.channel import normalize_email
from models.send_ledger import (
    LedgerRow,
    SendProvider,
    SendStatus,
    claimed_message_ids,
    ledger_key,
    mark_send,
    mask_address,
)
from workflows.contracts import StepInput, StepResult

SENDGRID_TIMEOUT_S = 15.0


def _status_of(exc: HTTPError) -> int:
    return int(getattr(exc, "status_code", 0) or 0)


class EmailActivities:
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
    async def send_email(self, inp: StepInput) -> StepResult:
        return await self.send(await self.plans.step_run(inp))

    async def send(self, run: StepRun) -> StepResult:
        step = run.step
        label = LABELS["email"]
        target = await load_target(self.engine, run, "email")
        channel = target.channel
        raw_to = render(run, step.get("to") or "{{email}}")
        try:
            to = normalize_email(raw_to)
        except ValueError:
            shown = mask_address(raw_to) if raw_to.strip() else "(empty)"
            raise fail(
                f"step {step['id']}: {shown} is not a valid email address", "InvalidAddress"
            ) from None
        subject = render(run, step["subject"])
        body = render(run, step["body"])
        key = ledger_key(run.workflow_id, step["id"])

        # Before the claim: a base URL the guard refuses leaves no ledger row behind.
        creds = await read_credentials(self.secrets, target)
        try:
            client = await sendgrid_client(
                target.integration.config, creds, guard=self.provider_guard
            )
        except ValueError as exc:
            raise misconfigured(target, exc) from None
        done, row, reconcile = await claim_or_resume(
            self.engine, run, target, key, to, SendProvider.sendgrid, label, "accepted"
        )
        if done is not None:
            return done

        # The SDK has no timeout by default; a hung connection must end before the activity's.
        client.client.timeout = SENDGRID_TIMEOUT_S
        sender: dict[str, str] = {"email": channel.sender}
        if channel.sender_name:
            sender["name"] = channel.sender_name
        mail: dict[str, Any] = {
            "personalizations": [{"to": [{"email": to}], "subject": subject}],
            "from": sender,
            "content": [{"type": "text/html" if step.get("html") else "text/plain", "value": body}],
            "custom_args": {"cx_key": key, "record_id": str(run.record_id)},
        }

        if reconcile:
            check_list_settled(row, self.list_lag, "SendGrid")
            found = await self._already_sent(client, row)
            if found is not None:
                return await accept_send(
                    self.engine, run, row, channel.name, found, status="accepted", reconciled=True
                )

        try:
            response = await asyncio.to_thread(
                lambda: client.client.mail.send.post(request_body=mail)
            )
        except HTTPError as exc:
            status = _status_of(exc)
            retryable = status == 429 or status >= 500
            if not retryable:
                await mark_send(self.engine, key, SendStatus.failed)
            raise ApplicationError(
                f"SendGrid refused the email to {mask_address(to)}: HTTP {status}",
                type=f"SendGrid{status}",
                non_retryable=not retryable,
            ) from exc
        except Exception as exc:  # connection reset, timeout: the ledger makes the retry safe
            raise ApplicationError(
                f"SendGrid unreachable sending to {mask_address(to)}: {type(exc).__name__}",
                type="SendGridUnavailable",
            ) from exc
        message_id = str(response.headers.get("X-Message-Id") or f"cx-{uuid.uuid4()}")
        return await accept_send(self.engine, run, row, channel.name, message_id, status="accepted")

    async def _already_sent(self, client: Any, row: LedgerRow) -> str | None:
        """The X-Message-Id of an email an earlier attempt got accepted (Email Activity search)."""
        query = f"unique_args['cx_key']={json.dumps(row.key)}"

        def search() -> Any:
            return client.client.messages.get(query_params={"query": query, "limit": 10})

        try:
            response = await asyncio.to_thread(search)
            found = json.loads(response.body or b"{}").get("messages") or []
        except Exception as exc:
            raise ApplicationError(
                f"could not check SendGrid for an earlier send: {type(exc).__name__}",
                type="SendGridUnavailable",
            ) from exc
        # msg_id is the X-Message-Id plus a ".filterdrecv…" suffix.
        ids = [str(m.get("msg_id") or "").split(".", 1)[0] for m in found if m.get("msg_id")]
        taken = await claimed_message_ids(self.engine, ids, row.key)
        return next((i for i in ids if i not in taken), None)
