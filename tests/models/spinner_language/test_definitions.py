from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from models.spinner_language.definition import SpinnerDefinition, definition_hash
from models.spinner_language.durations import parse_duration
from models.spinner_language.errors import DefinitionError, ValidationIssue
from models.spinner_language.steps import ApiCallStep, declared_outputs, step_targets
from models.spinner_language.validation import parse_definition, validate_definition
from models.spinner_language.yaml_io import SpinnerFile, dump_spinner_yaml, load_spinner_yaml

FIELDS = ["name", "amount", "phone", "tz", "call_at"]


def log(step_id: str, *, next: str | None = None, message: str = "hello") -> dict[str, Any]:
    return {"id": step_id, "type": "log", "message": message, "next": next}


def tag(
    step_id: str, *, disposition: str = "Done", tags: list[str] | None = None
) -> dict[str, Any]:
    return {"id": step_id, "type": "tag", "disposition": disposition, "tags": tags or []}


def decision(step_id: str, *, branches: list[tuple[str, str, str]], default: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "decision",
        "branches": [{"when": w, "label": label, "next": n} for w, label, n in branches],
        "default": default,
    }


def api_call(step_id: str, *, next: str | None = None, **settings: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "api_call",
        "method": "GET",
        "url": "https://x.test/",
        "next": next,
        **settings,
    }


def definition(*steps: dict[str, Any], start: str | None = None) -> dict[str, Any]:
    return {"steps": list(steps), "start": start}


def issues_of(data: dict[str, Any], fields: list[str] = FIELDS) -> list[ValidationIssue]:
    parsed, issues = parse_definition(data)
    return issues + (validate_definition(parsed, fields) if parsed is not None else [])


def errors_of(data: dict[str, Any]) -> list[ValidationIssue]:
    return [i for i in issues_of(data) if i.level == "error"]


def warnings_of(data: dict[str, Any], fields: list[str] = FIELDS) -> list[ValidationIssue]:
    return [i for i in issues_of(data, fields) if i.level == "warning"]


class TestSteps:
    def test_full_definition_parses(self) -> None:
        data = definition(
            log("greet", next="route", message="Hi {{name}}"),
            decision("route", branches=[("amount > 100", "big", "call")], default="wait"),
            {"id": "wait", "type": "wait", "duration": "2h", "next": "call"},
            api_call("call", next="cb", outputs={"order_id": "data.items[0].id", "code": "status"}),
            {
                "id": "cb",
                "type": "wait_for_callback",
                "timeout": "PT1H",
                "on_callback": "fn",
                "on_timeout": "done",
            },
            {"id": "fn", "type": "function", "code": "return {ok: true};", "next": "done"},
            tag("done", tags=["vip"]),
        )
        assert issues_of(data) == []

    def test_unknown_setting_is_rejected(self) -> None:
        with pytest.raises(ValidationError):
            SpinnerDefinition.model_validate(definition({**log("a"), "colour": "red"}))

    def test_decision_has_no_next(self) -> None:
        step = {**decision("a", branches=[], default="b"), "next": "b"}
        [issue] = errors_of(definition(step, log("b")))
        assert issue.path == "steps[0].next"
        assert "branches and default" in issue.message

    def test_step_id_must_be_a_slug(self) -> None:
        [issue] = errors_of(definition(log("Send SMS")))
        assert (issue.path, issue.step_id) == ("steps[0].id", "Send SMS")
        assert "lowercase" in issue.message

    def test_wait_needs_exactly_one_mode(self) -> None:
        step = {"id": "w", "type": "wait", "duration": "5m", "until_field": "call_at"}
        [issue] = errors_of(definition(step))
        assert issue.path == "steps[0]"
        assert "exactly one of duration, until_field or window" in issue.message

    def test_wait_window_checks_times_days_and_zone(self) -> None:
        window = {
            "start": "9am",
            "end": "17:00",
            "days": ["mon", "someday"],
            "timezone": "Mars/Base",
        }
        issues = errors_of(definition({"id": "w", "type": "wait", "window": window}))
        assert {i.path for i in issues} == {
            "steps[0].window.start",
            "steps[0].window.days[1]",
            "steps[0].window.timezone",
        }

    def test_wait_window_defaults_to_every_day(self) -> None:
        parsed = SpinnerDefinition.model_validate(
            definition({"id": "w", "type": "wait", "window": {"start": "09:00", "end": "17:00"}})
        )
        assert parsed.model_dump()["steps"][0]["window"]["days"] == [
            "mon",
            "tue",
            "wed",
            "thu",
            "fri",
            "sat",
            "sun",
        ]

    def test_function_limits(self) -> None:
        step = {"id": "f", "type": "function", "code": "return {}", "timeout_ms": 60_000}
        [issue] = errors_of(definition(step))
        assert issue.path == "steps[0].timeout_ms"

    def test_api_call_output_paths_are_checked(self) -> None:
        [issue] = errors_of(definition(api_call("c", outputs={"id": "data..id"})))
        assert issue.path == "steps[0].outputs"
        assert "data..id" in issue.message

    def test_api_call_timeout_at_most_120s(self) -> None:
        [issue] = errors_of(definition(api_call("c", timeout_s=300)))
        assert issue.path == "steps[0].timeout_s"

    def test_tag_must_set_something(self) -> None:
        [issue] = errors_of(definition({"id": "t", "type": "tag"}))
        assert "disposition or at least one tag" in issue.message


class TestHelpers:
    def test_step_targets(self) -> None:
        parsed = SpinnerDefinition.model_validate(
            definition(
                decision(
                    "d", branches=[("amount > 1", "big", "a"), ("true", "x", "b")], default="c"
                ),
                {
                    "id": "w",
                    "type": "wait_for_callback",
                    "timeout": "1h",
                    "on_callback": "a",
                    "on_timeout": "c",
                },
                log("a", next="b"),
                log("b"),
                log("c"),
            )
        )
        assert [step_targets(s) for s in parsed.steps] == [
            ["a", "b", "c"],
            ["a", "c"],
            ["b"],
            [],
            [],
        ]

    def test_declared_outputs(self) -> None:
        parsed = SpinnerDefinition.model_validate(
            definition(
                tag("t", tags=["x"]),
                api_call("c", outputs={"order_id": "data.id", "code": "status"}),
                {"id": "f", "type": "function", "code": "return {}"},
                {
                    "id": "w",
                    "type": "wait_for_callback",
                    "timeout": "1h",
                    "on_callback": "t",
                    "on_timeout": "t",
                },
                log("l"),
            )
        )
        assert [declared_outputs(s) for s in parsed.steps] == [
            {"disposition", "tags"},
            {"order_id", "code"},
            None,
            {"callback"},
            set(),
        ]

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("90s", timedelta(seconds=90)),
            ("15m", timedelta(minutes=15)),
            ("2h", timedelta(hours=2)),
            ("3d", timedelta(days=3)),
            ("1h30m", timedelta(minutes=90)),
            ("PT1H", timedelta(hours=1)),
            ("P1DT12H", timedelta(hours=36)),
        ],
    )
    def test_parse_duration(self, text: str, expected: timedelta) -> None:
        assert parse_duration(text) == expected

    @pytest.mark.parametrize("text", ["0s", "366d", "P1Y", "soon", "-5m", ""])
    def test_parse_duration_refuses(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_duration(text)

    def test_hash_ignores_key_order_and_spelled_out_defaults(self) -> None:
        a = SpinnerDefinition.model_validate(definition(log("a", message="x")))
        b = SpinnerDefinition.model_validate(
            {"steps": [{"message": "x", "level": "info", "type": "log", "id": "a"}]}
        )
        assert definition_hash(a) == definition_hash(b)
        assert len(definition_hash(a)) == 64

    def test_hash_changes_with_content(self) -> None:
        a = SpinnerDefinition.model_validate(definition(log("a", message="x")))
        b = SpinnerDefinition.model_validate(definition(log("a", message="y")))
        assert definition_hash(a) != definition_hash(b)


class TestParseErrors:
    def test_unknown_step_type_is_located(self) -> None:
        [issue] = issues_of(definition(log("a", next="b"), {"id": "b", "type": "fax"}))
        assert (issue.step_id, issue.path) == ("b", "steps[1].type")
        assert issue.message.startswith("unknown step type 'fax'; expected one of log, tag,")

    def test_unknown_setting_is_located(self) -> None:
        [issue] = issues_of(definition(log("a", next="b"), {**log("b"), "bar": 1}))
        assert (issue.path, issue.message) == ("steps[1].bar", "unknown setting 'bar'")

    def test_missing_default_branch(self) -> None:
        step = decision("d", branches=[("amount > 1", "big", "a")], default="a")
        del step["default"]
        [issue] = issues_of(definition(step, log("a")))
        assert (issue.step_id, issue.path) == ("d", "steps[0].default")
        assert issue.message == "missing required setting 'default'"

    def test_no_steps(self) -> None:
        [issue] = issues_of({"steps": []})
        assert (issue.path, issue.message) == ("steps", "a spinner needs at least one step")


class TestValidation:
    def test_dangling_next_names_the_missing_step(self) -> None:
        dangling, unreachable = errors_of(definition(log("a", next="sned_sms"), log("send_sms")))
        assert (dangling.step_id, dangling.path) == ("a", "steps[0].next")
        assert "'sned_sms'" in dangling.message and "did you mean 'send_sms'" in dangling.message
        assert unreachable.step_id == "send_sms"

    def test_dangling_branch_target_is_located(self) -> None:
        data = definition(decision("d", branches=[("true", "x", "nope")], default="a"), log("a"))
        [issue] = errors_of(data)
        assert issue.path == "steps[0].branches[0].next"

    def test_duplicate_step_ids(self) -> None:
        [issue] = errors_of(definition(log("a", next="b"), log("b"), log("b")))
        assert issue.path == "steps[2].id"
        assert "duplicate step id 'b'" in issue.message

    def test_unknown_start(self) -> None:
        [issue] = errors_of(definition(log("a"), start="b"))
        assert (issue.path, issue.message) == ("start", "start step 'b' does not exist")

    def test_unreachable_step(self) -> None:
        [issue] = errors_of(definition(log("a", next="c"), log("b", next="c"), log("c")))
        assert (issue.step_id, issue.path) == ("b", "steps[1]")
        assert "can never run" in issue.message

    def test_start_changes_what_is_reachable(self) -> None:
        assert (
            errors_of(definition(log("a", next="c"), log("b", next="a"), log("c"), start="b")) == []
        )

    def test_cycle_is_reported(self) -> None:
        data = definition(log("a", next="b"), log("b", next="c"), log("c", next="a"))
        [issue] = errors_of(data)
        assert issue.message.startswith("steps form a loop: a → b → c → a")
        assert (issue.step_id, issue.path) == ("c", "steps[2].next")

    def test_self_loop_is_a_cycle(self) -> None:
        [issue] = errors_of(definition({"id": "w", "type": "wait", "duration": "1h", "next": "w"}))
        assert "w → w" in issue.message

    def test_over_100_steps(self) -> None:
        steps = [log(f"s{i}", next=f"s{i + 1}" if i < 100 else None) for i in range(101)]
        [issue] = errors_of(definition(*steps))
        assert (issue.path, issue.step_id) == ("steps", None)
        assert "at most 100 steps" in issue.message and "101" in issue.message

    def test_condition_syntax_error_is_located(self) -> None:
        data = definition(
            decision("d", branches=[("amount > 1", "a", "a"), ("amount >", "b", "a")], default="a"),
            log("a"),
        )
        [issue] = errors_of(data)
        assert (issue.step_id, issue.path) == ("d", "steps[0].branches[1].when")
        assert issue.message.startswith("invalid condition:")

    def test_template_syntax_error_is_located(self) -> None:
        [issue] = errors_of(definition(api_call("c", headers={"X-Id": "{{ name "})))
        assert issue.path == "steps[0].headers.X-Id"
        assert issue.message.startswith("invalid template:")

    def test_template_reference_warning_names_step_and_path(self) -> None:
        [warning] = warnings_of(definition(log("a", next="b"), log("b", message="Hi {{nmae}}")))
        assert (warning.step_id, warning.path) == ("b", "steps[1].message")
        assert "'nmae'" in warning.message and "did you mean 'name'" in warning.message

    def test_payload_must_be_a_metadata_field(self) -> None:
        [warning] = warnings_of(definition(log("a", message="{{payload.disposition}}")))
        assert "no metadata field 'disposition'" in warning.message

    def test_context_names_are_checked(self) -> None:
        [warning] = warnings_of(definition(log("a", message="{{context.jobID}} {{context.jobId}}")))
        assert "'context.jobID'" in warning.message

    def test_output_of_an_earlier_step_is_known(self) -> None:
        data = definition(
            api_call("c", next="l", outputs={"order_id": "data.id"}),
            log("l", message="{{order_id}} {{output.order_id}}", next="d"),
            decision(
                "d", branches=[("order_id != null and payload.amount > 1", "ok", "t")], default="t"
            ),
            tag("t", disposition="{{ disposition }}"),
        )
        [warning] = warnings_of(data)
        # The tag step reads `disposition` before any step has set it.
        assert (warning.step_id, warning.path) == ("t", "steps[3].disposition")

    def test_output_of_a_later_step_is_warned(self) -> None:
        data = definition(
            log("l", message="{{output.order_id}}", next="c"),
            api_call("c", outputs={"order_id": "data.id"}),
        )
        [warning] = warnings_of(data)
        assert "no earlier step sets an output 'order_id'" in warning.message

    def test_output_on_some_path_is_enough(self) -> None:
        data = definition(
            decision("d", branches=[("amount > 1", "big", "c")], default="l"),
            api_call("c", next="l", outputs={"order_id": "data.id"}),
            log("l", message="{{ order_id }}"),
        )
        assert warnings_of(data) == []

    def test_function_step_silences_output_warnings(self) -> None:
        data = definition(
            {"id": "f", "type": "function", "code": "return {score: 1}", "next": "l"},
            log("l", message="{{ score }} {{ output.score }} {{ payload.score }}"),
        )
        [warning] = warnings_of(data)
        assert "'payload.score'" in warning.message

    def test_wait_columns_must_be_metadata_fields(self) -> None:
        step = {"id": "w", "type": "wait", "until_field": "callat"}
        [warning] = warnings_of(definition(step))
        assert (warning.path, warning.level) == ("steps[0].until_field", "warning")
        assert "did you mean 'call_at'" in warning.message


class TestYaml:
    def make_file(self) -> SpinnerFile:
        return SpinnerFile.model_validate(
            {
                "name": "Payment reminders",
                "description": "Nightly reminders",
                "project": "collections",
                "publish": True,
                "definition": definition(
                    log("greet", next="route", message="Hi {{name}}"),
                    decision("route", branches=[("amount > 100", "big", "call")], default="wait"),
                    {
                        "id": "wait",
                        "type": "wait",
                        "next": "call",
                        "window": {
                            "start": "09:00",
                            "end": "17:00",
                            "days": ["mon", "fri"],
                            "timezone_field": "tz",
                            "timezone": "Europe/Paris",
                        },
                    },
                    api_call(
                        "call",
                        next="fn",
                        method="POST",
                        body={"n": "{{name}}"},
                        headers={"X-Key": "abc"},
                        outputs={"code": "status"},
                        timeout_s=30,
                        bearer_secret="crm/token",
                    ),
                    {
                        "id": "fn",
                        "type": "function",
                        "code": "const a = 1;\nreturn {a};\n",
                        "next": "done",
                    },
                    tag("done", tags=["no", "2024", "true"]),
                ),
            }
        )

    def test_round_trip(self) -> None:
        spinner = self.make_file()
        assert load_spinner_yaml(dump_spinner_yaml(spinner)) == spinner

    def test_dump_leaves_out_defaults_and_orders_step_keys(self) -> None:
        text = dump_spinner_yaml(
            SpinnerFile.model_validate({"name": "x", "definition": definition(log("a"))})
        )
        assert text == (
            "name: x\ndefinition:\n  steps:\n  - id: a\n    type: log\n    message: hello\n"
        )

    def test_code_is_written_as_a_block(self) -> None:
        assert "code: |\n      const a = 1;\n      return {a};\n" in dump_spinner_yaml(
            self.make_file()
        )

    def test_yaml_1_1_surprises_stay_text(self) -> None:
        text = (
            "name: x\n"
            "definition:\n"
            "  steps:\n"
            "  - id: w\n"
            "    type: wait\n"
            "    window: {start: 08:30, end: 17:00, days: [mon]}\n"
            "    next: t\n"
            "  - id: t\n"
            "    type: tag\n"
            "    tags: [no, 2024-01-01, 2024]\n"
        )
        steps = load_spinner_yaml(text).definition.steps
        assert steps[0].model_dump()["window"]["end"] == "17:00"
        assert steps[1].model_dump()["tags"] == ["no", "2024-01-01", "2024"]

    def test_invalid_step_raises_located_error(self) -> None:
        text = "name: x\ndefinition:\n  steps:\n  - id: a\n    type: fax\n"
        with pytest.raises(DefinitionError) as caught:
            load_spinner_yaml(text)
        [issue] = caught.value.issues
        assert (issue.path, issue.step_id) == ("definition.steps[0].type", "a")
        assert "definition.steps[0].type: unknown step type 'fax'" in str(caught.value)

    def test_broken_yaml_names_the_line(self) -> None:
        with pytest.raises(DefinitionError, match="line 3"):
            load_spinner_yaml("name: x\ndefinition:\n  steps: - a\n")

    def test_not_a_mapping(self) -> None:
        with pytest.raises(DefinitionError, match="mapping"):
            load_spinner_yaml("- a\n- b\n")


def test_api_call_step_defaults() -> None:
    step = ApiCallStep.model_validate(api_call("c"))
    assert (step.timeout_s, step.headers, step.outputs, step.body) == (10, {}, {}, None)
