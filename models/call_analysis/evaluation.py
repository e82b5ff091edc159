"""Every tag's result for one call, from its fields, its transcript and the LLM's answers.

Pure functions: the `apply_tags` activity gathers the inputs (transcript, GenAI answers from one
LLM call per tag group) and stores what these return.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.base import API_STYLE
from models.call_analysis.tags import (
    AnyTag,
    BagOfWordsTag,
    DerivedTag,
    GenAIMode,
    GenAITag,
    MetadataTag,
    derived_order,
    tag_references,
)
from models.call_analysis.text import count_phrases, normalise
from models.spinner_language.expressions import compile_expression

MAX_QUOTE = 500


class _Shape(BaseModel):
    model_config = ConfigDict(**API_STYLE, validate_by_name=True)


class Utterance(_Shape):
    speaker: int | str
    start: float
    end: float
    confidence: float = 0.0
    text: str


class Evidence(_Shape):
    utterance_index: int
    speaker: int | str
    start: float
    quote: str


class TagResult(_Shape):
    hit: bool
    value: str | None = None
    count: int | None = None
    evidence: list[Evidence] = Field(default_factory=list)


class GenAIAnswer(_Shape):
    """What the model said about one tag: yes/no or a value, and where in the call."""

    hit: bool
    value: str | None = None
    utterance_index: int | None = None
    quote: str | None = None


class GenAIAnswerError(ValueError):
    """The model's reply is not the JSON object the prompt asked for."""


def _evidence(index: int, u: Utterance, quote: str | None = None) -> Evidence:
    return Evidence(
        utterance_index=index, speaker=u.speaker, start=u.start, quote=(quote or u.text)[:MAX_QUOTE]
    )


def condition_scope(results: Mapping[str, TagResult]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, outputs) for a condition over tags: a bare name reads whether the tag hit,
    `count.x` and `value.x` its count and extracted value."""
    metadata = {
        "count": {n: r.count for n, r in results.items()},
        "value": {n: r.value for n, r in results.items()},
    }
    return metadata, {n: r.hit for n, r in results.items()}


def holds(condition: str, results: Mapping[str, TagResult]) -> bool:
    metadata, outputs = condition_scope(results)
    return compile_expression(condition).evaluate(metadata, outputs, {})


def bag_of_words(tag: BagOfWordsTag, utterances: Sequence[Utterance]) -> TagResult:
    phrases = tuple(tag.phrases)
    total = 0
    evidence: list[Evidence] = []
    for i, u in enumerate(utterances):
        if tag.speaker is not None and str(u.speaker) != tag.speaker:
            continue
        found = count_phrases(normalise(u.text), phrases)
        if found:
            total += found
            evidence.append(_evidence(i, u))
    hit = total >= tag.min_count
    return TagResult(hit=hit, count=total, evidence=evidence if hit else [])


def metadata_tag(tag: MetadataTag, call: Mapping[str, Any]) -> TagResult:
    return TagResult(hit=compile_expression(tag.condition).evaluate(call, {}, {}))


def genai_result(
    tag: GenAITag, answer: GenAIAnswer | None, utterances: Sequence[Utterance]
) -> TagResult:
    if answer is None:
        return TagResult(hit=False)
    value = answer.value if tag.mode == GenAIMode.extract else None
    hit = bool(value and value.strip()) if tag.mode == GenAIMode.extract else answer.hit
    evidence: list[Evidence] = []
    index = answer.utterance_index
    if hit and index is not None and 0 <= index < len(utterances):
        u = utterances[index]
        # A quote the model made up is not evidence; the utterance it named is.
        quote = answer.quote if answer.quote and answer.quote in u.text else None
        evidence.append(_evidence(index, u, quote))
    return TagResult(hit=hit, value=value, evidence=evidence)


def evaluate_tags(
    tags: Sequence[AnyTag],
    call: Mapping[str, Any],
    utterances: Sequence[Utterance],
    genai: Mapping[str, GenAIAnswer],
) -> dict[str, TagResult]:
    """Every tag's result, keyed by tag name; derived tags after what they read."""
    results: dict[str, TagResult] = {}
    for tag in tags:
        if isinstance(tag, MetadataTag):
            results[tag.name] = metadata_tag(tag, call)
        elif isinstance(tag, BagOfWordsTag):
            results[tag.name] = bag_of_words(tag, utterances)
        elif isinstance(tag, GenAITag):
            results[tag.name] = genai_result(tag, genai.get(tag.name), utterances)
    for derived in derived_order(tags):
        results[derived.name] = derived_result(derived, results)
    return {t.name: results[t.name] for t in tags}


def derived_result(tag: DerivedTag, results: Mapping[str, TagResult]) -> TagResult:
    hit = holds(tag.condition, results)
    evidence: list[Evidence] = []
    if hit:
        evidence = merged_evidence(tag_references(compile_expression(tag.condition)), results)
    return TagResult(hit=hit, evidence=evidence)


def merged_evidence(names: Sequence[str], results: Mapping[str, TagResult]) -> list[Evidence]:
    """The evidence of the named tags that hit, each utterance once, in call order."""
    seen: dict[int, Evidence] = {}
    for name in names:
        result = results.get(name)
        if result is None or not result.hit:
            continue
        for e in result.evidence:
            seen.setdefault(e.utterance_index, e)
    return [seen[i] for i in sorted(seen)]


def genai_groups(tags: Sequence[AnyTag]) -> dict[str, list[GenAITag]]:
    groups: dict[str, list[GenAITag]] = {}
    for tag in tags:
        if isinstance(tag, GenAITag):
            groups.setdefault(tag.group, []).append(tag)
    return groups


def transcript_lines(utterances: Sequence[Utterance]) -> str:
    return "\n".join(
        f"[{i}] speaker {u.speaker} @{u.start:.1f}s: {u.text}" for i, u in enumerate(utterances)
    )


def genai_prompt(
    group: Sequence[GenAITag], utterances: Sequence[Utterance]
) -> list[dict[str, str]]:
    """The chat messages for one tag group: one question per tag, one JSON answer for all."""
    questions = "\n".join(
        f'- "{t.name}" ({"answer yes or no" if t.mode == GenAIMode.yes_no else "extract a value"}):'
        f" {t.question}"
        for t in group
    )
    system = (
        "You review customer service calls. Answer only from the transcript. Reply with one "
        'JSON object: {"answers": {"<tag>": {"answer": true|false, "value": string|null, '
        '"utterance": <index of the utterance that shows it>|null, "quote": "<exact words '
        'from that utterance>"|null}}}. For yes/no tags set "answer"; for extract tags set '
        '"value" (null when the call does not say) and "answer" to whether a value was found.'
    )
    user = (
        f"Tags:\n{questions}\n\nTranscript (index, speaker, start):\n{transcript_lines(utterances)}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class _RawAnswer(BaseModel):
    answer: bool | None = None
    value: str | int | float | None = None
    utterance: int | None = None
    quote: str | None = None


def parse_genai_answer(reply: str, group: Sequence[GenAITag]) -> dict[str, GenAIAnswer]:
    """The model's JSON reply for one group, one answer per tag it answered.

    A tag the model skipped has no answer (the tag does not hit); a reply that is not the
    asked-for JSON object raises GenAIAnswerError so the activity can retry or fail clearly.
    """
    fenced = _FENCE.match(reply)
    text = fenced.group(1) if fenced else reply
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenAIAnswerError(f"the model's reply is not JSON: {exc.msg}") from None
    answers = data.get("answers") if isinstance(data, dict) else None
    if not isinstance(answers, dict):
        raise GenAIAnswerError('the model\'s reply has no "answers" object')
    out: dict[str, GenAIAnswer] = {}
    for tag in group:
        raw = answers.get(tag.name)
        if not isinstance(raw, dict):
            continue
        try:
            parsed = _RawAnswer.model_validate(raw)
        except ValidationError:
            continue
        value = None if parsed.value is None else str(parsed.value)
        hit = bool(parsed.answer) if parsed.answer is not None else bool(value)
        out[tag.name] = GenAIAnswer(
            hit=hit, value=value, utterance_index=parsed.utterance, quote=parsed.quote
        )
    return out
