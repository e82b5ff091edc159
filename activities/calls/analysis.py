"""`apply_tags` and `qa_score`, and the analysed call written when the analysis is complete.

Both read the transcript `transcribe` stored and keep their results (tags with evidence, the
score breakdown with the scorecard snapshot) beside it in `call_transcript.analysis`; their
outputs in the workflow history are small figures only. `summarize` ends the analysis: it
writes the analysed call from all of that (`write_analysed_call`), once per record.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.calls.context import CallRecord, call_record
from activities.calls.targets import permanent
from activities.llm import LlmActivities, LlmTarget, Messages, OutputMode
from activities.plans import PlanCache, StepRun
from models.call_analysis.evaluation import (
    GenAIAnswer,
    GenAIAnswerError,
    TagResult,
    Utterance,
    evaluate_tags,
    genai_groups,
    genai_prompt,
    parse_genai_answer,
)
from models.call_analysis.scorecard import ScorecardSnapshot, ScoreResult, band, score
from models.call_analysis.tags import GenAITag, TagSetError
from models.call_transcript import CallTranscript
from store.call_transcripts import load_transcript, save_analysis, utterances_of
from store.calls import NewAnalysedCall, load_call_config, save_analysed_call
from workflows.contracts import StepInput, StepResult

NO_SPEECH: Final = "no_speech"
UNSCORED: Final = "unscored"


def analysis_utterances(stored: CallTranscript) -> list[Utterance]:
    """Every stored utterance (indexes are the evidence's), in the tags' shape."""
    return [
        Utterance(
            speaker=u.speaker,
            start=u.start,
            end=u.end,
            confidence=u.confidence or 0.0,
            text=u.transcript,
        )
        for u in utterances_of(stored)
    ]


def has_speech(utterances: list[Utterance]) -> bool:
    return any(u.text.strip() for u in utterances)


def mock_answers(group: list[GenAITag], utterances: list[Utterance]) -> dict[str, GenAIAnswer]:
    """The mock LLM's deterministic judgement: a hash of the tag and the call picks yes or no
    and the utterance quoted; no network."""
    answers: dict[str, GenAIAnswer] = {}
    for tag in group:
        digest = hashlib.sha256(
            "\n".join([tag.name, tag.question, *(u.text for u in utterances)]).encode()
        ).digest()
        index = digest[1] % len(utterances)
        if tag.mode == "extract":
            answers[tag.name] = GenAIAnswer(
                hit=True, value=f"mock {digest[:3].hex()}", utterance_index=index
            )
        else:
            answers[tag.name] = GenAIAnswer(hit=digest[0] % 2 == 0, utterance_index=index)
    return answers


def call_fields(run: StepRun, stored: CallTranscript) -> dict[str, Any]:
    """What metadata tags read: the row's fields, and the call's measured duration."""
    return {**run.metadata, "call_duration_s": stored.duration_s}


class AnalysisActivities:
    def __init__(self, engine: AsyncEngine, *, plans: PlanCache, llm: LlmActivities) -> None:
        self.engine = engine
        self.plans = plans
        self.llm = llm

    async def _transcript(self, run: StepRun, call: CallRecord) -> CallTranscript:
        async with self.engine.connect() as conn:
            stored = await load_transcript(conn, run.record_id, call.org_id)
        if stored is None:
            raise permanent(
                f"step {run.step['id']}: the call has no transcript; run a transcribe step first",
                "TranscriptMissing",
            )
        return stored

    # --- apply_tags -----------------------------------------------------------------------------

    @activity.defn
    async def apply_tags(self, inp: StepInput) -> StepResult:
        run = await self.plans.step_run(inp)
        step_id = str(run.step["id"])
        call = await call_record(self.engine, run.record_id)
        async with self.engine.connect() as conn:
            config = await load_call_config(conn, call.project_id)
        stored = await self._transcript(run, call)
        utterances = analysis_utterances(stored)
        speech = has_speech(utterances)
        groups = genai_groups(config.tags) if speech else {}
        genai: dict[str, GenAIAnswer] = {}
        started = time.monotonic()
        asked = 0
        mock = False
        if groups:
            target = await self.llm.target(run, call.integration(run.step, "llm"))
            mock = target.kind == "mock"
            for name, group in groups.items():
                genai.update(await self._ask(run, target, name, group, utterances))
                asked += 0 if mock else 1
        llm_ms = int((time.monotonic() - started) * 1000)
        try:
            results = evaluate_tags(config.tags, call_fields(run, stored), utterances, genai)
        except TagSetError as exc:  # tags are checked at save time; this is a stale set
            raise permanent(f"step {step_id}: {exc.message}", exc.code) from None
        async with self.engine.begin() as conn:
            await save_analysis(
                conn,
                run.record_id,
                call.org_id,
                {
                    "tags": {n: r.model_dump(mode="json") for n, r in results.items()},
                    "llmMs": llm_ms,
                },
            )
        hit = sorted(n for n, r in results.items() if r.hit)
        messages = [
            f"{len(hit)} of {len(results)} tags hit · {len(groups)} GenAI group(s)"
            + (f" · {asked} model call(s)" if asked else "")
        ]
        if not speech:
            messages.append("no speech in the call: only metadata tags were evaluated")
        if mock:
            messages.append('"ai_mock": true · GenAI tags judged by the mock LLM, no provider')
        return StepResult(
            step_id,
            str(run.step["type"]),
            outcome="tagged" if speech else NO_SPEECH,
            outputs={"hit_tags": hit, "hit_count": len(hit)},
            messages=messages,
            next=run.step.get("next"),
        )

    async def _ask(
        self,
        run: StepRun,
        target: LlmTarget,
        group_name: str,
        group: list[GenAITag],
        utterances: list[Utterance],
    ) -> dict[str, GenAIAnswer]:
        if target.kind == "mock":
            return mock_answers(group, utterances)
        spec = OutputMode(mode="text", output="reply", keys=(), labels=())
        messages: Messages = list(genai_prompt(group, utterances))  # type: ignore[arg-type]
        result = await self.llm.complete(run, target, spec, messages, started=time.monotonic())
        try:
            return parse_genai_answer(str(result.outputs["reply"]), group)
        except GenAIAnswerError as exc:
            # Retried by the step's retry policy: models answer differently on a second try.
            raise ApplicationError(
                f"step {run.step['id']}: GenAI tag group '{group_name}': {exc}",
                type="GenAIAnswer",
            ) from None

    # --- qa_score -------------------------------------------------------------------------------

    @activity.defn
    async def qa_score(self, inp: StepInput) -> StepResult:
        run = await self.plans.step_run(inp)
        step_id = str(run.step["id"])
        call = await call_record(self.engine, run.record_id)
        stored = await self._transcript(run, call)
        analysis = stored.analysis or {}
        if "tags" not in analysis:
            raise permanent(
                f"step {step_id}: the call has no tag results; run an apply_tags step first",
                "TagsMissing",
            )
        outputs: dict[str, Any] = {"score": None, "max_score": None, "percent": None}
        if not has_speech(analysis_utterances(stored)):
            part: dict[str, Any] = {"score": None, "band": None}
            outputs["band"], message = NO_SPEECH, "no speech in the call: not scored"
        else:
            async with self.engine.connect() as conn:
                config = await load_call_config(conn, call.project_id)
            if config.scorecard is None:
                part = {"score": None, "band": None}
                outputs["band"], message = UNSCORED, "the project has no scorecard: not scored"
            else:
                tags = {n: TagResult.model_validate(r) for n, r in analysis["tags"].items()}
                result = score(config.scorecard, tags)
                graded = band(result.percent, config.setup)
                part = {
                    "score": result.model_dump(mode="json"),
                    "band": graded.value if graded else None,
                    "scorecardVersionId": str(config.scorecard_version_id),
                    "scorecardSnapshot": config.scorecard.model_dump(mode="json"),
                }
                outputs = {
                    "score": result.total,
                    "max_score": result.max,
                    "percent": result.percent,
                    "band": graded.value if graded else UNSCORED,
                }
                message = (
                    f"{result.total} / {result.max} points ({result.percent}%) · "
                    f"{outputs['band']} · scorecard {config.scorecard.name} "
                    f"v{config.scorecard.version}"
                )
        async with self.engine.begin() as conn:
            await save_analysis(conn, run.record_id, call.org_id, part)
        return StepResult(
            step_id,
            str(run.step["type"]),
            outcome="scored" if part["score"] else str(outputs["band"]),
            outputs=outputs,
            messages=[message],
            next=run.step.get("next"),
        )


def _started_at(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _float(raw: object) -> float | None:
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _text(raw: object, limit: int) -> str | None:
    return str(raw)[:limit] if raw not in (None, "") else None


async def write_analysed_call(
    engine: AsyncEngine,
    run: StepRun,
    call: CallRecord,
    stored: CallTranscript,
    summary: str,
    summary_ms: int,
) -> int:
    """The record's analysed call (its first one if the step is retried)."""
    analysis = stored.analysis or {}
    raw_score = analysis.get("score")
    raw_snapshot = analysis.get("scorecardSnapshot")
    version = analysis.get("scorecardVersionId")
    meta = run.metadata
    new = NewAnalysedCall(
        org_id=call.org_id,
        project_id=call.project_id,
        record_id=run.record_id,
        job_id=call.job_id,
        transcript=analysis_utterances(stored),
        tags={n: TagResult.model_validate(r) for n, r in (analysis.get("tags") or {}).items()},
        call_id=_text(meta.get("call_id"), 200),
        agent=_text(meta.get("agent"), 200),
        direction=_text(meta.get("direction"), 32),
        started_at=_started_at(meta.get("started_at")),
        duration_s=_float(meta.get("duration_s")) or stored.duration_s,
        score=ScoreResult.model_validate(raw_score) if raw_score else None,
        band=analysis.get("band"),
        summary=summary,
        scorecard_version_id=uuid.UUID(version) if version and raw_score else None,
        scorecard_snapshot=(
            ScorecardSnapshot.model_validate(raw_snapshot) if raw_snapshot and raw_score else None
        ),
        stt_ms=stored.stt_ms,
        llm_ms=int(analysis.get("llmMs") or 0) + summary_ms,
    )
    async with engine.begin() as conn:
        return await save_analysed_call(conn, new)


def with_analysed(result: StepResult, analysed_id: int) -> StepResult:
    return replace(result, messages=[*result.messages, f"analysed call {analysed_id} written"])
