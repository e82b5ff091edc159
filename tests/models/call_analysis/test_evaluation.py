from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from models.call_analysis.evaluation import (
    GenAIAnswer,
    GenAIAnswerError,
    Utterance,
    evaluate_tags,
    genai_groups,
    genai_prompt,
    parse_genai_answer,
)
from models.call_analysis.tags import AnyTag, GenAITag, TagSetError, derived_order, tag_from_json


def tags(*defs: dict[str, Any]) -> list[AnyTag]:
    return [tag_from_json(d) for d in defs]


def bow(name: str, *phrases: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "bag_of_words", "name": name, "phrases": list(phrases), **extra}


def utterances(*lines: tuple[int, str]) -> list[Utterance]:
    return [
        Utterance(speaker=s, start=float(i * 5), end=float(i * 5 + 4), confidence=0.9, text=t)
        for i, (s, t) in enumerate(lines)
    ]


CALL = utterances(
    (0, "Bonjour, je suis désolé pour l'attente."),
    (1, "Pas de problème. DESOLE aussi, my card was declined"),
    (0, "I'm SORRY to hear that. Sorry again!"),
    (1, "sorrynot a match, unsorry neither"),
)


class TestBagOfWords:
    def test_diacritics_and_case_are_ignored(self) -> None:
        result = evaluate_tags(tags(bow("apology", "désolé")), {}, CALL, {})["apology"]
        assert result.hit and result.count == 2
        assert [e.utterance_index for e in result.evidence] == [0, 1]
        assert result.evidence[0].quote == "Bonjour, je suis désolé pour l'attente."

    def test_word_boundaries(self) -> None:
        result = evaluate_tags(tags(bow("sorry", "sorry")), {}, CALL, {})["sorry"]
        # "sorrynot" and "unsorry" are other words.
        assert result.count == 2
        assert [e.utterance_index for e in result.evidence] == [2]

    def test_multi_word_phrase_spans_any_whitespace(self) -> None:
        call = utterances((1, "my   Card\nwas declined"), (1, "card declined"))
        result = evaluate_tags(tags(bow("declined", "card was declined")), {}, call, {})
        assert result["declined"].count == 1

    def test_speaker_filter(self) -> None:
        result = evaluate_tags(tags(bow("a", "desole", speaker="1")), {}, CALL, {})["a"]
        assert result.count == 1 and [e.speaker for e in result.evidence] == [1]

    def test_min_count(self) -> None:
        found = evaluate_tags(
            tags(bow("twice", "sorry", minCount=2), bow("thrice", "sorry", minCount=3)),
            {},
            CALL,
            {},
        )
        assert found["twice"].hit and not found["thrice"].hit
        assert found["thrice"].count == 2 and found["thrice"].evidence == []

    def test_blank_phrase_is_refused(self) -> None:
        with pytest.raises(ValidationError):
            tag_from_json(bow("x", "   "))


class TestMetadataAndDerived:
    def test_metadata_condition_uses_the_decision_language(self) -> None:
        t = tags(
            {
                "kind": "metadata",
                "name": "long_inbound",
                "condition": 'direction == "inbound" and duration_s > 300',
            }
        )
        assert evaluate_tags(t, {"direction": "inbound", "duration_s": "301"}, [], {})[
            "long_inbound"
        ].hit
        assert not evaluate_tags(t, {"direction": "outbound", "duration_s": 900}, [], {})[
            "long_inbound"
        ].hit

    def test_bad_condition_is_refused_at_save(self) -> None:
        with pytest.raises(ValidationError, match="condition"):
            tag_from_json({"kind": "metadata", "name": "m", "condition": "agent && x"})

    def test_derived_in_dependency_order_with_counts_and_evidence(self) -> None:
        defined = tags(
            # Declared before what it reads: evaluation order follows the references.
            {"kind": "derived", "name": "escalate", "condition": "upset and not apology"},
            {"kind": "derived", "name": "upset", "condition": "declined or count.sorry >= 2"},
            bow("declined", "declined"),
            bow("sorry", "sorry"),
            bow("apology", "we apologise"),
        )
        results = evaluate_tags(defined, {}, CALL, {})
        assert results["upset"].hit and results["escalate"].hit
        assert [e.utterance_index for e in results["escalate"].evidence] == [1, 2]
        assert [t.name for t in derived_order(defined)] == ["upset", "escalate"]

    def test_cycle_is_refused(self) -> None:
        defined = tags(
            {"kind": "derived", "name": "a", "condition": "b"},
            {"kind": "derived", "name": "b", "condition": "c and true"},
            {"kind": "derived", "name": "c", "condition": "a"},
        )
        with pytest.raises(TagSetError) as exc:
            derived_order(defined)
        assert exc.value.code == "TAG_CYCLE"

    def test_unknown_reference_is_refused(self) -> None:
        with pytest.raises(TagSetError) as exc:
            derived_order(tags({"kind": "derived", "name": "a", "condition": "count.ghost > 1"}))
        assert exc.value.code == "TAG_UNKNOWN" and "ghost" in exc.value.message

    def test_reserved_names_are_refused(self) -> None:
        with pytest.raises(ValidationError, match="reserved"):
            tag_from_json(bow("count", "x"))


class TestGenAI:
    GROUP = tags(
        {
            "kind": "genai",
            "name": "resolved",
            "question": "Was the issue resolved?",
            "group": "outcome",
        },
        {
            "kind": "genai",
            "name": "reason",
            "question": "Why did they call?",
            "mode": "extract",
            "group": "outcome",
        },
        {"kind": "genai", "name": "polite", "question": "Was the agent polite?"},
    )

    def test_one_group_per_call(self) -> None:
        groups = genai_groups(self.GROUP)
        assert {k: [t.name for t in v] for k, v in groups.items()} == {
            "outcome": ["resolved", "reason"],
            "default": ["polite"],
        }
        messages = genai_prompt(groups["outcome"], CALL)
        assert '"resolved"' in messages[1]["content"] and '"polite"' not in messages[1]["content"]
        assert "[3] speaker 1 @15.0s: sorrynot" in messages[1]["content"]

    def test_parse_and_evaluate_with_evidence(self) -> None:
        group = [t for t in self.GROUP if isinstance(t, GenAITag) and t.group == "outcome"]
        reply = """```json
{"answers": {"resolved": {"answer": true, "utterance": 2, "quote": "Sorry again!"},
             "reason": {"answer": true, "value": "card declined", "utterance": 1,
                        "quote": "words never said"}}}
```"""
        answers = parse_genai_answer(reply, group)
        results = evaluate_tags(self.GROUP, {}, CALL, answers)
        assert results["resolved"].hit
        assert results["resolved"].evidence[0].quote == "Sorry again!"
        assert results["reason"].value == "card declined"
        # An invented quote is replaced by the utterance the model pointed at.
        assert results["reason"].evidence[0].quote == CALL[1].text
        assert not results["polite"].hit  # never asked in this group

    def test_out_of_range_utterance_is_no_evidence(self) -> None:
        results = evaluate_tags(
            self.GROUP, {}, CALL, {"resolved": GenAIAnswer(hit=True, utterance_index=99)}
        )
        assert results["resolved"].hit and results["resolved"].evidence == []

    @pytest.mark.parametrize("reply", ["not json", "[1, 2]", '{"answer": true}'])
    def test_bad_reply_raises(self, reply: str) -> None:
        with pytest.raises(GenAIAnswerError):
            parse_genai_answer(reply, [t for t in self.GROUP if isinstance(t, GenAITag)])
