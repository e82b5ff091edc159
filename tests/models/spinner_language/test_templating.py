from __future__ import annotations

from typing import Any

import pytest

from models.spinner_language.templating import TemplateError, render_template, template_references

METADATA = {"name": "Ann", "amount": "150", "city": "Paris", "items": "3 boxes"}
CONTEXT = {"jobId": "job-1", "recordId": "rec-9", "callbackUrl": "https://cx.example/cb/rec-9"}


def render(source: str, *, outputs: dict[str, Any] | None = None, **metadata: Any) -> str:
    return render_template(
        source, metadata=metadata or METADATA, outputs=outputs or {}, context=CONTEXT
    )


class TestNames:
    def test_metadata_by_bare_name(self) -> None:
        assert render("Hi {{name}} from {{ city }}") == "Hi Ann from Paris"

    def test_prior_output_beats_metadata_of_same_name(self) -> None:
        assert render("{{name}}", outputs={"name": "Bob"}) == "Bob"

    def test_payload_reads_metadata_only(self) -> None:
        assert render("{{payload.name}}", outputs={"name": "Bob"}) == "Ann"

    def test_output_reads_outputs_only(self) -> None:
        assert render("{{output.city}}", outputs={"score": 7}) == "‹output.city›"
        assert render("{{output.score}}", outputs={"score": 7}) == "7"

    def test_context_values(self) -> None:
        assert render("{{context.jobId}}/{{context.recordId}}") == "job-1/rec-9"
        assert render("{{ context.callbackUrl }}") == "https://cx.example/cb/rec-9"

    def test_nested_output_fields_and_list_items(self) -> None:
        outputs = {"callback": {"status": "paid", "lines": [{"sku": "A1"}, {"sku": "B2"}]}}
        assert render("{{callback.status}} {{output.callback.lines[1].sku}}", outputs=outputs) == (
            "paid B2"
        )


class TestMissing:
    def test_missing_bare_name_renders_its_path(self) -> None:
        assert render("Hi {{nmae}}!") == "Hi ‹nmae›!"

    def test_missing_payload_field_renders_its_path(self) -> None:
        assert render("{{ payload.nmae }}") == "‹payload.nmae›"

    def test_missing_nested_field_renders_full_path(self) -> None:
        outputs = {"callback": {"status": "paid"}}
        assert render("{{ output.callback.stauts }}", outputs=outputs) == (
            "‹output.callback.stauts›"
        )

    def test_default_filter_replaces_missing_value(self) -> None:
        assert render("Hi {{ nickname | default('there') }}") == "Hi there"


class TestValues:
    def test_none_renders_empty(self) -> None:
        assert render("[{{ ai_response }}]", outputs={"ai_response": None}) == "[]"

    def test_dicts_and_lists_render_as_json(self) -> None:
        outputs = {"fields": {"a": 1, "b": "é"}, "tags": ["vip", "fr"]}
        assert render("{{fields}} {{tags}}", outputs=outputs) == '{"a": 1, "b": "é"} ["vip", "fr"]'

    def test_numbers_render_with_str(self) -> None:
        assert render("{{ score }}/{{ ratio }}", outputs={"score": 7, "ratio": 0.5}) == "7/0.5"

    def test_safe_filters(self) -> None:
        assert render(
            "{{ name | upper }} {{ tags | join(', ') }}", outputs={"tags": ["a", "b"]}
        ) == ("ANN a, b")
        assert render("{{ amount | float | round(1) }}") == "150.0"

    def test_if_blocks(self) -> None:
        source = "{% if vip %}Dear {{ name }}{% else %}Hi{% endif %}"
        assert render(source, outputs={"vip": True}) == "Dear Ann"
        assert render(source) == "Hi"

    def test_no_html_escaping(self) -> None:
        assert render("{{ name }}", name="<Ann & Co>") == "<Ann & Co>"


class TestSandbox:
    @pytest.mark.parametrize(
        "source",
        [
            "{{ ''.__class__ }}",
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{ payload.items() }}",
            "{{ name.upper() }}",
            "{{ range(10) }}",
            "{% import 'os' as os %}",
            "{% include 'secrets.txt' %}",
            "{% for i in [1, 2] %}{{ i }}{% endfor %}",
            "{% set x = 1 %}",
            "{{ name | attr('__class__') }}",
            "{{ 'a' * 100000000 }}",
            "{{ payload[name] }}",
        ],
    )
    def test_escape_is_refused(self, source: str) -> None:
        with pytest.raises(TemplateError):
            render(source)

    def test_method_names_read_data_not_methods(self) -> None:
        assert render("{{ payload.items }}") == "3 boxes"
        assert (
            render("{{ payload.keys }} {{ name.__class__ }}") == "‹payload.keys› ‹name.__class__›"
        )

    def test_builtin_globals_are_not_visible(self) -> None:
        assert render("{{ lipsum }} {{ cycler.__init__.__globals__ }}") == (
            "‹lipsum› ‹cycler.__init__.__globals__›"
        )

    def test_call_error_message_is_clear(self) -> None:
        with pytest.raises(TemplateError, match="function calls"):
            render("{{ payload.items() }}")

    def test_syntax_error_names_the_line(self) -> None:
        with pytest.raises(TemplateError, match="line 2"):
            render("Hello\n{{ name ")


class TestReferences:
    def test_lists_dotted_paths_in_order(self) -> None:
        source = "{{name}} {{payload.x}} {% if output.y.z %}{{ context.jobId }}{% endif %} {{name}}"
        assert template_references(source) == ["name", "payload.x", "output.y.z", "context.jobId"]

    def test_invalid_template_raises(self) -> None:
        with pytest.raises(TemplateError):
            template_references("{{ name ")

    def test_plain_text_has_no_references(self) -> None:
        assert template_references("Thanks for your order.") == []
