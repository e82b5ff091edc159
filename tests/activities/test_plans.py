"""The typed plan a RecordWorkflow gets: routing, timeouts, and which outputs each step reads."""

from __future__ import annotations

from activities.plans import compile_plan
from workflows.contracts import PlanStep, outputs_read_by

DEFINITION = {
    "steps": [
        {
            "id": "hello",
            "type": "log",
            "message": "Hi {{name}} ({{payload.city}})",
            "next": "route",
        },
        {
            "id": "route",
            "type": "decision",
            "branches": [{"when": "output.score > 5", "next": "ask", "label": "hot"}],
            "default": "mark",
        },
        {"id": "mark", "type": "tag", "disposition": "Cold {{context.jobId}}"},
        {
            "id": "ask",
            "type": "sms",
            "channel_id": "00000000-0000-0000-0000-000000000001",
            "body": "Re {{output.summary}}",
            "wait_for": "reply",
            "timeout": "2h",
            "next": "code",
            "on_replied": "mark",
        },
        {"id": "code", "type": "function", "code": "return {}", "next": "call"},
        {
            "id": "call",
            "type": "api_call",
            "method": "GET",
            "url": "https://example.com/{{id}}",
            "timeout_s": 7,
        },
    ]
}


def test_the_plan_carries_routing_and_timeouts_only() -> None:
    plan, steps = compile_plan(DEFINITION)
    assert plan.start == "hello"
    assert plan.steps["ask"] == PlanStep(
        id="ask",
        type="sms",
        next="code",
        on={"on_replied": "mark"},
        wait_for="reply",
        wait_timeout_s=7200.0,
        activity_timeout_s=20.0,
        reads=["phone", "summary"],  # `to` defaults to {{phone}}
    )
    assert plan.steps["call"].activity_timeout_s == 12.0
    # The full definitions stay in the worker's cache.
    assert steps["ask"]["body"] == "Re {{output.summary}}"


def test_a_cheap_step_reads_what_the_cheap_steps_it_leads_to_read() -> None:
    plan, _ = compile_plan(DEFINITION)
    # log → decision → tag: a bare name may be an output; payload and context are not outputs;
    # a tag step adds to the tags so far.
    assert plan.steps["hello"].reads == ["name", "score", "tags"]
    assert plan.steps["mark"].reads == ["tags"]


def test_a_function_reads_every_output_and_a_step_input_carries_only_what_is_read() -> None:
    plan, _ = compile_plan(DEFINITION)
    outputs = {"summary": "s" * 2048, "score": 9, "reply": "yes", "message_id": "SM1"}
    assert plan.steps["code"].reads is None
    assert outputs_read_by(plan.steps["code"], outputs) == outputs
    assert outputs_read_by(plan.steps["ask"], outputs) == {"summary": "s" * 2048}
    assert outputs_read_by(plan.steps["call"], outputs) == {}
