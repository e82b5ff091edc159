"""The `api_call` step: templated HTTP request through the SSRF-guarded client."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.http_client import (
    ApiCaller,
    ApiRequest,
    BlockedAddressError,
    InvalidRequestError,
    ResponseTooLargeError,
    UpstreamHttpError,
)
from activities.plans import PlanCache, StepRun
from activities.steps import render
from infra.vault import SecretNotFound, SecretStore, VaultUnavailable
from workflows.contracts import StepInput, StepResult

# The same on every attempt of one step of one record: a retried call (the worker died before it
# saw the answer) carries the key of the first, so the receiving API can apply it once.
IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(run: StepRun) -> str:
    return f"{run.workflow_id}:{run.step['id']}"


class HttpActivities:
    def __init__(
        self,
        caller: ApiCaller,
        engine: AsyncEngine | None = None,
        secrets: SecretStore | None = None,
        *,
        plans: PlanCache,
    ) -> None:
        self.caller = caller
        self.plans = plans
        self.engine = engine
        self.secrets = secrets

    async def _secret_headers(self, run: StepRun) -> dict[str, str]:
        """Bearer token and headers from named Vault secrets, read here and never passed through
        Temporal: they reach the request only, not the step's input, result, messages or errors."""
        step = run.step
        wanted = dict(step.get("secret_headers") or {})
        if step.get("bearer_secret"):
            wanted["Authorization"] = step["bearer_secret"]
        if not wanted:
            return {}
        if self.engine is None or self.secrets is None:
            raise ApplicationError("this worker has no vault access", non_retryable=True)
        async with self.engine.connect() as conn:
            org = (
                await conn.execute(
                    text("select org_id from record where id = :id"), {"id": run.record_id}
                )
            ).scalar_one_or_none()
        if org is None:
            raise ApplicationError(f"record {run.record_id} not found", non_retryable=True)
        headers: dict[str, str] = {}
        for header, name in wanted.items():
            try:
                value = await self.secrets.read_secret(uuid.UUID(str(org)), name)
            except SecretNotFound:
                raise ApplicationError(
                    f"step {step['id']}: secret {name!r} is not in the vault",
                    type="SecretNotFound",
                    non_retryable=True,
                ) from None
            except VaultUnavailable:
                # Retried by Temporal: the vault coming back is enough, nothing is lost.
                raise ApplicationError(
                    "vault unavailable", type="VaultUnavailable", non_retryable=False
                ) from None
            is_bearer = header == "Authorization" and name == step.get("bearer_secret")
            headers[header] = f"Bearer {value}" if is_bearer else value
        return headers

    @activity.defn
    async def api_call(self, inp: StepInput) -> StepResult:
        return await self.call(await self.plans.step_run(inp))

    async def call(self, run: StepRun) -> StepResult:
        step = run.step
        headers = {
            **{k: render(run, v) for k, v in (step.get("headers") or {}).items()},
            **await self._secret_headers(run),
        }
        if not any(name.lower() == IDEMPOTENCY_HEADER.lower() for name in headers):
            headers[IDEMPOTENCY_HEADER] = idempotency_key(run)
        body, content_type = request_body(run)
        if content_type and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = content_type
        request = ApiRequest(
            method=step["method"],
            url=with_query(render(run, step["url"]), render_mapping(run, step.get("query"))),
            headers=headers,
            body=body,
            timeout_s=float(step.get("timeout_s", 10)),
            output_paths=dict(step.get("outputs") or {}),
        )
        try:
            response = await self.caller.call(request)
        except BlockedAddressError as exc:
            raise ApplicationError(str(exc), type="BlockedAddress", non_retryable=True) from exc
        except InvalidRequestError as exc:
            raise ApplicationError(str(exc), type="InvalidRequest", non_retryable=True) from exc
        except ResponseTooLargeError as exc:
            raise ApplicationError(str(exc), type="ResponseTooLarge", non_retryable=True) from exc
        except UpstreamHttpError as exc:
            raise ApplicationError(
                str(exc),
                type=f"Http{exc.status}",
                non_retryable=not exc.retryable,
                next_retry_delay=_seconds(exc.retry_after),
            ) from exc
        return StepResult(
            run.step["id"],
            run.step["type"],
            outcome="api_called",
            outputs=response.outputs,
            messages=[
                f"{request.method} {request.url} → {response.status} in {response.elapsed_ms} ms"
            ],
            next=step.get("next"),
        )


# A JSON leaf that is one expression ending in `| int` / `| float` is sent as a JSON number.
_NUMBER_LEAF = re.compile(r"^\s*\{\{[^{}]*\|\s*(int|float)\s*\}\}\s*$")


def render_mapping(run: StepRun, values: dict[str, str] | None) -> dict[str, str]:
    return {k: render(run, v) for k, v in (values or {}).items()}


def render_json(run: StepRun, value: Any) -> Any:
    """A structured body with every string leaf rendered (each later JSON-encoded as a whole,
    never spliced into JSON text)."""
    if isinstance(value, str):
        text = render(run, value)
        number = _NUMBER_LEAF.match(value)
        if number is None:
            return text
        try:
            return int(text) if number.group(1) == "int" else float(text)
        except ValueError:
            return text
    if isinstance(value, dict):
        return {k: render_json(run, v) for k, v in value.items()}
    if isinstance(value, list):
        return [render_json(run, v) for v in value]
    return value


def request_body(run: StepRun) -> tuple[str | None, str | None]:
    """(body, content type to send unless the step sets one)."""
    body, form = run.step.get("body"), run.step.get("form")
    if form is not None:
        return urlencode(render_mapping(run, form)), "application/x-www-form-urlencoded"
    if isinstance(body, dict | list):
        return json.dumps(render_json(run, body), ensure_ascii=False), "application/json"
    if isinstance(body, str):
        return render(run, body), None
    return None, None


def with_query(url: str, params: dict[str, str]) -> str:
    if not params:
        return url
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def _seconds(value: float | None) -> timedelta | None:
    return timedelta(seconds=value) if value else None
