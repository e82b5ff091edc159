"""A transcript as the call page shows it: each utterance with its time, speaker, the tags it is
evidence for, and the quoted words marked inside its text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Line:
    index: int
    speaker: str
    start: str
    # (text, marked): the utterance cut around its evidence quotes; the template escapes each.
    parts: list[tuple[str, bool]]
    tags: list[str] = field(default_factory=list)


def clock(seconds: float) -> str:
    whole = max(int(seconds), 0)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def marked_parts(text: str, quotes: Sequence[str]) -> list[tuple[str, bool]]:
    """`text` split into runs, the runs that are one of `quotes` marked (overlaps merged)."""
    spans: list[tuple[int, int]] = []
    for quote in {q for q in quotes if q}:
        at = text.find(quote)
        while at != -1:
            spans.append((at, at + len(quote)))
            at = text.find(quote, at + len(quote))
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts: list[tuple[str, bool]] = []
    cursor = 0
    for start, end in merged:
        if start > cursor:
            parts.append((text[cursor:start], False))
        parts.append((text[start:end], True))
        cursor = end
    if cursor < len(text):
        parts.append((text[cursor:], False))
    return parts


def transcript_lines(
    utterances: Sequence[Mapping[str, Any]], tags: Mapping[str, Mapping[str, Any]]
) -> list[Line]:
    quotes: dict[int, list[str]] = {}
    tagged: dict[int, list[str]] = {}
    for name, result in tags.items():
        for ev in result.get("evidence") or []:
            index = int(ev["utteranceIndex"])
            quotes.setdefault(index, []).append(str(ev["quote"]))
            if name not in tagged.setdefault(index, []):
                tagged[index].append(name)
    return [
        Line(
            index=i,
            speaker=str(u["speaker"]),
            start=clock(float(u["start"])),
            parts=marked_parts(str(u["text"]), quotes.get(i, [])),
            tags=tagged.get(i, []),
        )
        for i, u in enumerate(utterances)
    ]
