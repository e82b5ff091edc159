"""The `ai_agent` step: one chat completion per record through an OpenAI-compatible or mock LLM.

The reply must fit the step's output mode (text, key_value, classification, list). A reply that
does not fit is asked for once more with a corrective message; a second misfit fails the record
with `AiOutputMismatch`, naming what was expected and what came back, so the journey explains it.

Prompts and replies can hold a contact's personal data: they go to the provider and into the
step's outputs, never into logs or step messages (those carry ids, the model and token counts).
Provider error texts are not passed on for refused credentials (they quote part of the key), and
no ApplicationError here chains its cause: a chained provider exception would land in the
workflow history with its own message.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final

import openai
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.plans import PlanCache, StepRun
from activities.steps import render
from infra.providers import ProviderGuard, openai_client
from infra.vault import SecretNotFound, SecretStore, VaultUnavailable
from workflows.contracts import StepInput, StepResult

Messages = list[ChatCompletionMessageParam]

LLM_KINDS: Final = frozenset({"openai", "mock"})
DEFAULT_MODELS: Final = {"openai": "gpt-4o-mini", "mock": "mock"}
EXCERPT_CHARS: Final = 200
# RecordWorkflow gives the activity timeout_s + 10 s; the corrective call must fit in what is left.
ACTIVITY_MARGIN_S: Final = 10.0
MIN_CALL_S: Final = 1.0
# A provider asking us to come back much later is capped: the record retries within minutes.
MAX_RETRY_AFTER_S: Final = 600.0
# HTTP statuses worth another attempt (the same set the OpenAI SDK would retry itself).
RETRYABLE_STATUSES: Final = frozenset({408, 409, 429})
# Key-looking fragments scrubbed from provider error texts that are passed on.
_KEYISH = re.compile(r"\b(?:sk|pk|key|rk)[-_][A-Za-z0-9_\-*.]{3,}", re.IGNORECASE)
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_TRAILING = ".!?,;:。"
_QUOTES = "\"'`“”‘’*"


class Misfit(Exception):
    """The reply does not fit the output mode; the message says why (without the reply)."""


@dataclass(frozen=True)
class LlmTarget:
    org_id: uuid.UUID
    integration_id: uuid.UUID
    kind: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Completion:
    reply: str
    tokens: int | None


@dataclass(frozen=True)
class OutputMode:
    """What a step's output mode asks the model for and how its reply becomes outputs."""

    mode: str
    output: str
    keys: tuple[str, ...]
    labels: tuple[str, ...]

    @classmethod
    def of(cls, step: Mapping[str, Any]) -> OutputMode:
        return cls(
            mode=str(step.get("mode") or "text"),
            output=str(step.get("output") or "ai_response"),
            keys=tuple(str(k) for k in step.get("keys") or ()),
            labels=tuple(str(label) for label in step.get("labels") or ()),
        )

    @property
    def json_object(self) -> bool:
        # Only a top-level object can be forced: OpenAI's JSON mode refuses bare arrays.
        return self.mode == "key_value"

    def expectation(self) -> str:
        if self.mode == "key_value":
            return "a JSON object with the keys " + ", ".join(self.keys)
        if self.mode == "classification":
            return "exactly one of the labels " + ", ".join(self.labels)
        if self.mode == "list":
            return "a JSON array of strings"
        return "a non-empty text answer"

    def instruction(self) -> str:
        """Appended to the system prompt so the model knows the shape of the answer."""
        if self.mode == "key_value":
            keys = ", ".join(json.dumps(k) for k in self.keys)
            return (
                f"Answer with only a JSON object that has exactly these keys: {keys}. "
                "Use null for a value you cannot determine. No other text."
            )
        if self.mode == "classification":
            labels = "\n".join(f"- {label}" for label in self.labels)
            return (
                "Answer with exactly one of the following labels, written as listed, "
                f"and nothing else:\n{labels}"
            )
        if self.mode == "list":
            return (
                'Answer with only a JSON array of strings, like ["first", "second"]. No other text.'
            )
        return ""

    def parse(self, reply: str) -> dict[str, Any]:
        if self.mode == "key_value":
            return self._key_value(reply)
        if self.mode == "classification":
            return {self.output: self._label(reply)}
        if self.mode == "list":
            return {self.output: self._list(reply)}
        if not reply.strip():
            raise Misfit("the answer was empty")
        return {self.output: reply.strip()}

    def _key_value(self, reply: str) -> dict[str, Any]:
        try:
            found = json.loads(_unfence(reply))
        except ValueError:
            raise Misfit("the answer was not valid JSON") from None
        if not isinstance(found, dict):
            raise Misfit("the answer was JSON but not an object")
        by_fold = {str(k).casefold(): v for k, v in found.items()}
        missing = [k for k in self.keys if k not in found and k.casefold() not in by_fold]
        if missing:
            raise Misfit("the object lacked the keys " + ", ".join(missing))
        return {k: found[k] if k in found else by_fold[k.casefold()] for k in self.keys}

    def _label(self, reply: str) -> str:
        wanted = _normal_label(reply)
        for label in self.labels:
            if _normal_label(label) == wanted:
                return label
        raise Misfit("the answer was not one of the labels")

    def _list(self, reply: str) -> list[str]:
        body = _unfence(reply)
        if not body:
            raise Misfit("the answer was empty")
        if body[0] in "[{":
            try:
                found = json.loads(body)
            except ValueError:
                raise Misfit("the answer was not valid JSON") from None
            if isinstance(found, dict) and len(found) == 1:
                # {"items": [...]}: what a model in JSON mode answers when asked for a list.
                found = next(iter(found.values()))
            if not isinstance(found, list) or not all(
                isinstance(x, str | int | float) and not isinstance(x, bool) for x in found
            ):
                raise Misfit("the answer was JSON but not an array of strings")
            return [str(x) for x in found]
        # Fallback: one item per line, list markers dropped.
        items = [_BULLET.sub("", line).strip() for line in body.splitlines()]
        return [item for item in items if item]


def _unfence(reply: str) -> str:
    body = reply.strip()
    match = _FENCE.match(body)
    return match.group(1).strip() if match else body


def _normal_label(value: str) -> str:
    return value.strip().strip(_QUOTES).strip().rstrip(_TRAILING).strip().casefold()


def excerpt(reply: str) -> str:
    flat = " ".join(reply.split())
    if not flat:
        return "(an empty answer)"
    if len(flat) > EXCERPT_CHARS:
        flat = flat[: EXCERPT_CHARS - 1] + "…"
    return repr(flat)


def mismatch(step_id: str, spec: OutputMode, reply: str, why: str) -> ApplicationError:
    return ApplicationError(
        f"step {step_id}: the AI answer did not fit {spec.mode} mode after a corrective retry "
        f"({why}): expected {spec.expectation()}; got {excerpt(reply)}",
        type="AiOutputMismatch",
        non_retryable=True,
    )


def permanent(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


# --- the mock LLM -------------------------------------------------------------------------------


def _word_count(text_: str) -> int:
    return max(1, len(text_.split()))


def mock_complete(model: str, messages: Messages, spec: OutputMode) -> Completion:
    """A deterministic answer that fits the mode, derived from a hash of the prompt; no network."""
    prompt = [str(m.get("content") or "") for m in messages]
    digest = hashlib.sha256(
        json.dumps([model, spec.mode, spec.keys, spec.labels, prompt]).encode()
    ).hexdigest()
    if spec.mode == "key_value":
        reply = json.dumps(
            {key: f"mock {key} {digest[4 * i : 4 * i + 6]}" for i, key in enumerate(spec.keys)}
        )
    elif spec.mode == "classification":
        reply = spec.labels[int(digest[:12], 16) % len(spec.labels)]
    elif spec.mode == "list":
        reply = json.dumps([f"mock item {i + 1} ({digest[6 * i : 6 * i + 6]})" for i in range(3)])
    else:
        task = " ".join(prompt[-1].split())
        shown = task if len(task) <= 80 else task[:79] + "…"
        reply = f"[mock] Answer {digest[:8]} to: {shown}"
    return Completion(reply, sum(_word_count(p) for p in prompt) + _word_count(reply))


# --- provider errors ----------------------------------------------------------------------------


def _retry_after(headers: Mapping[str, str]) -> timedelta | None:
    seconds: float | None = None
    try:
        if headers.get("retry-after-ms"):
            seconds = float(headers["retry-after-ms"]) / 1000
        elif headers.get("retry-after"):
            raw = headers["retry-after"].strip()
            try:
                seconds = float(raw)
            except ValueError:
                seconds = parsedate_to_datetime(raw).timestamp() - time.time()
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if seconds is None or seconds <= 0:
        return None
    return timedelta(seconds=min(seconds, MAX_RETRY_AFTER_S))


def _provider_text(exc: openai.APIStatusError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    shown = _KEYISH.sub("***", " ".join(str(message or "").split()))
    return shown[:EXCERPT_CHARS]


def provider_error(
    exc: openai.OpenAIError, step_id: str, model: str, timeout_s: float
) -> Exception:
    """The ApplicationError for a failed call: permanent problems fail the record, others retry."""
    where = f"step {step_id}: LLM call"
    if isinstance(exc, openai.APITimeoutError):
        return ApplicationError(f"{where} timed out after {timeout_s:g} s", type="LlmTimeout")
    if isinstance(exc, openai.APIConnectionError):
        return ApplicationError(f"{where} could not reach the provider", type="LlmUnreachable")
    if not isinstance(exc, openai.APIStatusError):
        return ApplicationError(f"{where} failed ({type(exc).__name__})", type="LlmError")
    status = exc.status_code
    if status == 401:
        return permanent(
            f"{where} refused (HTTP 401): the provider did not accept the integration's API key; "
            "update the integration's credentials",
            "LlmUnauthorized",
        )
    if status == 403:
        return permanent(
            f"{where} refused (HTTP 403): the integration's API key may not use model {model!r} "
            "or this endpoint",
            "LlmForbidden",
        )
    if status == 404:
        return permanent(
            f"{where} found nothing (HTTP 404): check the model {model!r} and the "
            "integration's base URL",
            "LlmNotFound",
        )
    if status in RETRYABLE_STATUSES or status >= 500:
        return ApplicationError(
            f"{where} failed with HTTP {status}; will retry",
            type=f"LlmHttp{status}",
            next_retry_delay=_retry_after(exc.response.headers),
        )
    detail = _provider_text(exc)
    return permanent(
        f"{where} rejected (HTTP {status})" + (f": {detail}" if detail else ""), f"LlmHttp{status}"
    )


# --- the activity -------------------------------------------------------------------------------


class LlmActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        secrets: SecretStore,
        *,
        plans: PlanCache,
        provider_guard: ProviderGuard,
    ) -> None:
        self.engine = engine
        self.secrets = secrets
        self.plans = plans
        self.provider_guard = provider_guard

    @activity.defn
    async def ai_agent(self, inp: StepInput) -> StepResult:
        return await self.agent(await self.plans.step_run(inp))

    async def agent(self, run: StepRun) -> StepResult:
        started = time.monotonic()
        step = run.step
        target = await self.target(run, step.get("integration_id"))
        spec = OutputMode.of(step)
        system = render(run, step["role"])
        if spec.instruction():
            system = f"{system}\n\n{spec.instruction()}"
        messages: Messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": render(run, step["task"])},
        ]
        return await self.complete(run, target, spec, messages, started=started)

    async def complete(
        self,
        run: StepRun,
        target: LlmTarget,
        spec: OutputMode,
        messages: Messages,
        *,
        started: float,
    ) -> StepResult:
        """Asks the model, with one corrective retry when the answer does not fit `spec`."""
        step = run.step
        step_id = str(step["id"])
        model = str(
            step.get("model") or target.config.get("default_model") or DEFAULT_MODELS[target.kind]
        )
        temperature = float(step.get("temperature", 0.2))
        timeout_s = float(step.get("timeout_s") or 120)

        if target.kind == "mock":
            done = mock_complete(model, messages, spec)
            try:
                outputs = spec.parse(done.reply)
            except Misfit as exc:  # the mock always fits; this guards its own bugs
                raise mismatch(step_id, spec, done.reply, str(exc)) from None
            self._log(run, model, done.tokens, calls=1, mock=True)
            return StepResult(
                step_id,
                str(step["type"]),
                outcome="ai_responded",
                outputs=outputs,
                messages=[
                    f"model {model} · {done.tokens} tokens",
                    '"ai_mock": true · answered by the mock LLM, no provider was called',
                ],
                next=step.get("next"),
            )

        creds = await self._credentials(target)
        try:
            client = await openai_client(target.config, creds, guard=self.provider_guard)
        except ValueError as exc:
            # The message names the missing field, never a value.
            raise permanent(
                f"step {step_id}: integration {target.integration_id} is misconfigured: {exc}",
                "IntegrationConfig",
            ) from None
        del creds
        tokens: list[int | None] = []
        async with client:
            first = await self._call(client, model, messages, temperature, spec, step_id, timeout_s)
            tokens.append(first.tokens)
            try:
                outputs = spec.parse(first.reply)
            except Misfit as why:
                messages = [
                    *messages,
                    {"role": "assistant", "content": first.reply},
                    {
                        "role": "user",
                        "content": (
                            f"Your answer could not be used: {why}. Expected "
                            f"{spec.expectation()}. {spec.instruction()}".strip()
                        ),
                    },
                ]
                left = timeout_s + ACTIVITY_MARGIN_S - (time.monotonic() - started) - MIN_CALL_S
                second = await self._call(
                    client,
                    model,
                    messages,
                    temperature,
                    spec,
                    step_id,
                    max(MIN_CALL_S, min(timeout_s, left)),
                )
                tokens.append(second.tokens)
                try:
                    outputs = spec.parse(second.reply)
                except Misfit as again:
                    self._log(run, model, _total(tokens), calls=2, mock=False, fitted=False)
                    raise mismatch(step_id, spec, second.reply, str(again)) from None
        total = _total(tokens)
        self._log(run, model, total, calls=len(tokens), mock=False)
        summary = f"model {model} · " + (f"{total} tokens" if total is not None else "tokens n/a")
        if len(tokens) > 1:
            summary += " · 2 calls (first answer did not fit, corrected)"
        return StepResult(
            step_id,
            str(step["type"]),
            outcome="ai_responded",
            outputs=outputs,
            messages=[summary],
            next=step.get("next"),
        )

    async def target(self, run: StepRun, raw: object) -> LlmTarget:
        """The LLM integration `raw` names, looked up within the record's organization only."""
        step_id = run.step["id"]
        if raw is None:
            raise permanent(
                f"step {step_id}: no LLM integration chosen (an openai or mock integration id)",
                "IntegrationNotFound",
            )
        try:
            integration_id = uuid.UUID(str(raw))
        except ValueError:
            raise permanent(
                f"step {step_id}: integration {raw!r} not found", "IntegrationNotFound"
            ) from None
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "select i.kind, i.config, i.org_id from integration i"
                        " join record r on r.org_id = i.org_id"
                        " where r.id = :record and i.id = :integration"
                    ),
                    {"record": run.record_id, "integration": integration_id},
                )
            ).first()
        if row is None:
            raise permanent(
                f"step {step_id}: integration {integration_id} not found", "IntegrationNotFound"
            )
        if row.kind not in LLM_KINDS:
            raise permanent(
                f"step {step_id}: integration {integration_id} is a {row.kind} integration, "
                "not an LLM (openai or mock)",
                "IntegrationKind",
            )
        return LlmTarget(row.org_id, integration_id, str(row.kind), dict(row.config or {}))

    async def _credentials(self, target: LlmTarget) -> dict[str, Any]:
        try:
            return await self.secrets.read_credentials(target.org_id, target.integration_id)
        except VaultUnavailable as exc:
            # Retryable: Vault being down must not fail a campaign.
            raise ApplicationError(f"Vault unavailable: {exc}", type="VaultUnavailable") from None
        except SecretNotFound:
            raise permanent(
                f"integration {target.integration_id} has no credentials in Vault", "Credentials"
            ) from None

    async def _call(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        messages: Messages,
        temperature: float,
        spec: OutputMode,
        step_id: str,
        timeout_s: float,
    ) -> Completion:
        try:
            response = await client.chat.completions.create(
                model=model,
                messages=messages,
                temperature=temperature,
                response_format={"type": "json_object"} if spec.json_object else openai.omit,
                timeout=timeout_s,
            )
        except openai.OpenAIError as exc:
            raise provider_error(exc, step_id, model, timeout_s) from None
        reply = response.choices[0].message.content if response.choices else None
        usage = response.usage
        return Completion(reply or "", usage.total_tokens if usage is not None else None)

    @staticmethod
    def _log(
        run: StepRun,
        model: str,
        tokens: int | None,
        *,
        calls: int,
        mock: bool,
        fitted: bool = True,
    ) -> None:
        # Ids, model and counts only: prompts and replies may hold personal data.
        activity.logger.info(
            "ai_agent record %s step %s: model %s, %s tokens, %d call(s), mock=%s, fitted=%s",
            run.record_id,
            run.step["id"],
            model,
            tokens,
            calls,
            mock,
            fitted,
        )


def _total(tokens: list[int | None]) -> int | None:
    known = [t for t in tokens if t is not None]
    return sum(known) if known else None
