"""The call analysis steps: `transcribe` (stt task queue) and `summarize` (llm task queue).

`transcribe` reads the recording from storage into a temporary file, sends it to the STT
integration and stores the transcript in PostgreSQL (`call_transcript`); its outputs are counts
and the duration only, so the workflow history never holds what was said. It heartbeats with
its progress (bytes read, bytes sent, waiting for the provider) so a long call is not mistaken
for a dead worker. `summarize` reads the stored transcript and asks the step's LLM for a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.calls.analysis import with_analysed, write_analysed_call
from activities.calls.context import CallRecord, call_record
from activities.calls.recordings import Downloaded, Located, RecordingStore, locate
from activities.calls.targets import Target, credentials, load_target, permanent
from activities.calls.transcription import (
    Transcript,
    deepgram_transcribe,
    mock_transcript,
    parse_mock_json,
    parse_mock_text,
)
from activities.llm import LlmActivities, Messages, OutputMode
from activities.plans import PlanCache, StepRun
from activities.steps import render
from infra.http_guard import AddressGuard
from infra.providers import ProviderGuard
from infra.vault import SecretStore
from models.call_transcript import CallTranscript, Utterance
from models.plan import Meter
from store.call_transcripts import load_transcript, save_transcript, utterances_of
from store.usage import (
    PlanLimitReached,
    PlanRefused,
    consume_monthly,
    limit_for,
    monthly_usage,
    org_plan,
)
from workflows.contracts import StepInput, StepResult

STT_KINDS: Final = frozenset({"deepgram", "mock_stt"})
STORAGE_KINDS: Final = frozenset({"s3", "https"})
# Between progress reports the activity still heartbeats this often (waiting for the provider).
HEARTBEAT_EVERY_S: Final = 5.0
# Longest transcript sent to the LLM; a longer call is summarized from its beginning.
MAX_TRANSCRIPT_CHARS: Final = 200_000


class Heartbeat:
    """Reports the step's phase and bytes done, on progress and at least every few seconds."""

    def __init__(self) -> None:
        self.phase = "starting"
        self.done = 0

    async def progress(self, done: int) -> None:
        self.done = done
        self.beat()

    def enter(self, phase: str) -> None:
        self.phase, self.done = phase, 0
        self.beat()

    def beat(self) -> None:
        activity.heartbeat({"phase": self.phase, "bytes": self.done})

    @contextlib.asynccontextmanager
    async def ticking(self, every_s: float = HEARTBEAT_EVERY_S) -> AsyncIterator[Heartbeat]:
        async def tick() -> None:
            while True:
                await asyncio.sleep(every_s)
                self.beat()

        task = asyncio.create_task(tick())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class CallActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        secrets: SecretStore,
        *,
        plans: PlanCache,
        provider_guard: ProviderGuard,
        http_guard: AddressGuard,
        llm: LlmActivities,
    ) -> None:
        self.engine = engine
        self.secrets = secrets
        self.plans = plans
        self.provider_guard = provider_guard
        self.http_guard = http_guard
        self.llm = llm

    # --- transcribe -----------------------------------------------------------------------------

    @activity.defn
    async def transcribe(self, inp: StepInput) -> StepResult:
        run = await self.plans.step_run(inp)
        step = run.step
        step_id = str(step["id"])
        call = await call_record(self.engine, run.record_id)
        stt_id = call.integration(step, "stt")
        storage_id = call.integration(step, "storage", required=False)
        async with self.engine.connect() as conn:
            saved = await load_transcript(conn, run.record_id, call.org_id)
        if saved is not None:
            # A retried attempt (the worker died after storing it): no second provider call,
            # no second charge.
            return _reused(run, saved)
        stt = await load_target(
            self.engine,
            run.record_id,
            stt_id,
            kinds=STT_KINDS,
            step_id=step_id,
            what="a speech-to-text",
        )
        await self._plan_allows(call, step_id)
        storage: Target | None = None
        storage_creds = None
        if storage_id:
            storage = await load_target(
                self.engine,
                run.record_id,
                storage_id,
                kinds=STORAGE_KINDS,
                step_id=step_id,
                what="a storage",
            )
            if storage.kind == "s3":
                storage_creds = await credentials(self.secrets, storage)
        where = locate(render(run, step.get("recording") or "{{recording_url}}"), storage, step_id)
        store = RecordingStore(
            step_id,
            storage,
            storage_creds,
            provider_guard=self.provider_guard,
            http_guard=self.http_guard,
        )
        started = time.monotonic()
        async with Heartbeat().ticking() as beat:
            with tempfile.TemporaryDirectory(prefix="cxgear-call-") as tmp:
                beat.enter("downloading")
                recording = await store.download(where, Path(tmp) / "recording", beat.progress)
                if stt.kind == "mock_stt":
                    transcript, source = await self._mock(store, where, recording, step_id)
                else:
                    creds = await credentials(self.secrets, stt)
                    beat.enter("transcribing")
                    transcript = await deepgram_transcribe(
                        stt.config,
                        creds,
                        recording,
                        guard=self.provider_guard,
                        step_id=step_id,
                        language=step.get("language"),
                        progress=beat.progress,
                    )
                    source = None
        try:
            async with self.engine.begin() as conn:
                first = await save_transcript(
                    conn,
                    record_id=run.record_id,
                    org_id=stt.org_id,
                    provider=transcript.provider,
                    duration_s=transcript.duration_s,
                    utterances=transcript.utterances,
                    provider_request_id=transcript.request_id,
                    stt_ms=int((time.monotonic() - started) * 1000),
                )
                if first:  # one charge per analysed call, with its transcript or not at all
                    plan = await org_plan(conn, call.org_id)
                    await consume_monthly(conn, call.org_id, plan, Meter.call_analyses)
        except PlanLimitReached as exc:
            raise permanent(f"step {step_id}: {exc}", "PLAN_LIMIT") from None
        # Ids, sizes and counts only: what was said stays in the database.
        activity.logger.info(
            "transcribe record %s step %s: %s, %d bytes of %s, %d utterances in %.1f s",
            run.record_id,
            step_id,
            transcript.provider,
            recording.size,
            recording.format,
            len(transcript.utterances),
            time.monotonic() - started,
        )
        return _transcribed(run, transcript, recording, source)

    async def _plan_allows(self, call: CallRecord, step_id: str) -> None:
        """Refuse before the provider is paid when the month's call analyses are used up."""
        async with self.engine.connect() as conn:
            plan = await org_plan(conn, call.org_id)
            used = (await monthly_usage(conn, call.org_id)).get(Meter.call_analyses, 0)
        try:
            limit = limit_for(plan, Meter.call_analyses)
        except PlanRefused as exc:
            raise permanent(f"step {step_id}: {exc}", "PLAN_LIMIT") from None
        if used >= limit:
            raise permanent(
                f"step {step_id}: {PlanLimitReached(plan, Meter.call_analyses, limit)}",
                "PLAN_LIMIT",
            )

    async def _mock(
        self, store: RecordingStore, where: Located, recording: Downloaded, step_id: str
    ) -> tuple[Transcript, str]:
        for suffix in (".txt", ".json"):
            beside = where.sibling(suffix)
            raw = await store.read_small(beside)
            if raw is None:
                continue
            if suffix == ".txt":
                utterances = parse_mock_text(raw.decode("utf-8", "replace"), beside.shown, step_id)
            else:
                utterances = parse_mock_json(raw, beside.shown, step_id)
            return mock_transcript(utterances, recording), beside.shown
        raise permanent(
            f"step {step_id}: the mock speech-to-text found no transcript beside the recording "
            f"({where.sibling('.txt').shown} or .json)",
            "MockTranscriptMissing",
        )

    # --- summarize ------------------------------------------------------------------------------

    @activity.defn
    async def summarize(self, inp: StepInput) -> StepResult:
        run = await self.plans.step_run(inp)
        step = run.step
        step_id = str(step["id"])
        output = str(step.get("output") or "summary")
        call = await call_record(self.engine, run.record_id)
        async with self.engine.connect() as conn:
            stored = await load_transcript(conn, run.record_id, call.org_id)
        if stored is None:
            raise permanent(
                f"step {step_id}: the call has no transcript; run a transcribe step first",
                "TranscriptMissing",
            )
        utterances = utterances_of(stored)
        started = time.monotonic()
        if not any(u.transcript.strip() for u in utterances):
            result = StepResult(
                step_id,
                str(step["type"]),
                outcome="no_speech",
                outputs={output: ""},
                messages=["no speech in the call: nothing to summarize, no model was asked"],
                next=step.get("next"),
            )
        else:
            target = await self.llm.target(run, call.integration(step, "llm"))
            prompt = step.get("prompt") or call.setup.summary_prompt
            spec = OutputMode(mode="text", output=output, keys=(), labels=())
            messages: Messages = [
                {"role": "system", "content": render(run, prompt)},
                {"role": "user", "content": transcript_text(utterances)},
            ]
            result = await self.llm.complete(run, target, spec, messages, started=started)
            result = replace(result, outcome="summarized")
        if not call.call_project:
            return result
        # The last step of the analysis: the analysed call, complete, written once.
        analysed = await write_analysed_call(
            self.engine,
            run,
            call,
            stored,
            str(result.outputs.get(output) or ""),
            int((time.monotonic() - started) * 1000),
        )
        return with_analysed(result, analysed)


def transcript_text(utterances: list[Utterance]) -> str:
    lines = [
        f"[{int(u.start) // 60:02d}:{int(u.start) % 60:02d}] {u.speaker}: {u.transcript}"
        for u in utterances
        if u.transcript.strip()
    ]
    text = "Call transcript:\n" + "\n".join(lines)
    if len(text) > MAX_TRANSCRIPT_CHARS:
        text = text[:MAX_TRANSCRIPT_CHARS] + "\n[transcript cut here: the call is longer]"
    return text


def _reused(run: StepRun, saved: CallTranscript) -> StepResult:
    utterances = utterances_of(saved)
    speech = any(u.transcript.strip() for u in utterances)
    words = sum(len(u.transcript.split()) for u in utterances)
    outputs = {
        "call_duration_s": saved.duration_s,
        "utterance_count": len(utterances) if speech else 0,
        "speaker_count": len({u.speaker for u in utterances if u.transcript.strip()}),
        "word_count": words,
        "no_speech": not speech,
    }
    return StepResult(
        str(run.step["id"]),
        str(run.step["type"]),
        outcome="transcribed" if speech else "no_speech",
        outputs=outputs,
        messages=[
            f"{outputs['utterance_count']} utterances · {saved.duration_s:.1f} s · the "
            f"transcript stored by an earlier attempt ({saved.provider}), provider not asked again"
        ],
        next=run.step.get("next"),
    )


def _transcribed(
    run: StepRun, transcript: Transcript, recording: Downloaded, mock_source: str | None
) -> StepResult:
    speech = transcript.has_speech
    outputs = {
        "call_duration_s": transcript.duration_s,
        "utterance_count": len(transcript.utterances) if speech else 0,
        "speaker_count": transcript.speakers,
        "word_count": transcript.words,
        "no_speech": not speech,
    }
    summary = (
        f"{outputs['utterance_count']} utterances · {transcript.speakers} speakers · "
        f"{transcript.duration_s:.1f} s · {recording.format}, {recording.size} bytes"
        if speech
        else f"no speech in the call ({transcript.duration_s:.1f} s of {recording.format})"
    )
    messages = [summary]
    if mock_source is not None:
        messages.append(
            f'"stt_mock": true · transcript read by the mock speech-to-text from {mock_source}, '
            "no provider was called"
        )
    return StepResult(
        str(run.step["id"]),
        str(run.step["type"]),
        outcome="transcribed" if speech else "no_speech",
        outputs=outputs,
        messages=messages,
        next=run.step.get("next"),
    )
