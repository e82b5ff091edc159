"""The spinner language reference (`docs/spinner-language.md`), rendered from the models.

Everything a reader could see drift is taken from the code: settings, types, defaults and
descriptions from the step models' JSON schema; filters, tests and context fields from the
template module; and every example's result is computed here by the code that runs spinners
(templates rendered, conditions evaluated, durations parsed, JavaScript run in the sandbox).
What lives above `models/` (the sandbox's limits, the callback scheme) comes in as arguments
from the composition root: `cxgear docs spinner-language` writes the file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from models.record import callback_url
from models.spinner_language.definition import MAX_STEPS, SpinnerDefinition
from models.spinner_language.durations import MAX_DURATION, parse_duration
from models.spinner_language.expressions import (
    MAX_DEPTH,
    MAX_EXPRESSION_LENGTH,
    ExpressionError,
    compile_expression,
)
from models.spinner_language.steps import (
    STEP_CLASSES,
    Branch,
    FunctionStep,
    StepBase,
    Window,
)
from models.spinner_language.templating import (
    ALLOWED_FILTERS,
    ALLOWED_TESTS,
    CONTEXT_FIELDS,
    MAX_TEMPLATE_LENGTH,
    NAMESPACES,
    TemplateError,
    render_template,
)
from models.spinner_language.yaml_io import SpinnerFile, load_spinner_yaml

__all__ = ["CallbackScheme", "FunctionLimits", "FunctionRun", "render_reference"]

REGENERATE: Final = ".venv/bin/cxgear docs spinner-language"


@dataclass(frozen=True)
class FunctionLimits:
    """The sandbox's limits on what a call may log and return."""

    max_log_lines: int
    max_log_line_chars: int
    max_output_chars: int


@dataclass(frozen=True)
class FunctionRun:
    ok: bool
    outputs: dict[str, Any]
    logs: list[str]
    error: str | None


RunFunction = Callable[[str, dict[str, Any], dict[str, Any], dict[str, Any]], FunctionRun]


@dataclass(frozen=True)
class CallbackScheme:
    """How record callbacks are signed today (Standard Webhooks), with a worked example
    computed by the example code the reference shows."""

    route: str
    rotate_route: str
    status_route: str
    id_header: str
    timestamp_header: str
    signature_header: str
    id_max_chars: int
    window_s: int
    default_overlap_s: int
    python_source: str
    curl_source: str
    example_secret: str
    example_msg_id: str
    example_timestamp: int
    example_body: str
    example_headers: Mapping[str, str]


# Sample data every live example in the reference is evaluated against.
SAMPLE_METADATA: Final[dict[str, Any]] = {
    "first_name": "ada",
    "email": "ada@example.com",
    "visits": "12",
    "plan": "pro",
    "country": "FR",
    "opted_in": "false",
}
SAMPLE_OUTPUTS: Final[dict[str, Any]] = {
    "score": 72,
    "tags": ["hot", "trial"],
    "crm": {"lead": {"id": "L-17"}},
}
SAMPLE_CONTEXT: Final[dict[str, Any]] = {
    "jobId": "5b0c…",
    "recordId": 42,
    "callbackUrl": callback_url(
        "https://cx.example.com", uuid.UUID("6f1de0a4-2c55-4b8e-9a3f-0d7c81b2e945")
    ),
    "spinnerId": "9e1d…",
    "projectId": "c3a4…",
}

CONTEXT_DOC: Final[dict[str, str]] = {
    "jobId": "the job the record belongs to",
    "recordId": "the record's id (what `cxgear journey` takes)",
    "callbackUrl": "the record's callback address (see Callbacks)",
    "spinnerId": "the spinner being run",
    "projectId": "the spinner's project",
}

FILTER_EXAMPLES: Final[dict[str, str]] = {
    "upper": "{{ first_name | upper }}",
    "lower": "{{ plan | lower }}",
    "title": "{{ first_name | title }}",
    "capitalize": "{{ first_name | capitalize }}",
    "trim": "{{ '  padded  ' | trim }}",
    "default": "{{ payload.nickname | default('friend') }}",
    "d": "{{ payload.nickname | d('friend') }}",
    "round": "{{ 2.675 | round(1) }}",
    "join": "{{ output.tags | join(', ') }}",
    "truncate": "{{ 'a rather long sentence' | truncate(12) }}",
    "length": "{{ output.tags | length }}",
    "int": "{{ visits | int }}",
    "float": "{{ visits | float }}",
}
TEST_EXAMPLES: Final[dict[str, str]] = {
    "defined": "{{ 'yes' if payload.plan is defined else 'no' }}",
    "undefined": "{{ 'yes' if payload.nickname is undefined else 'no' }}",
    "none": "{{ 'yes' if payload.plan is none else 'no' }}",
    "number": "{{ 'yes' if score is number else 'no' }}",
    "string": "{{ 'yes' if visits is string else 'no' }}",
}
TEMPLATE_EXAMPLES: Final = (
    "Hello {{first_name}}",
    "Hello {{ payload.first_name | title }}",
    "Lead {{ output.crm.lead.id }} scored {{score}}",
    "{{ crm.lead.id }}",
    'Hi {{ payload["first_name"] }}',
    "{{ output.tags.0 }} and {{ tags.1 }}",
    "{% if score > 50 %}hot{% else %}cold{% endif %}",
    "{{ 'hot' if score > 50 else 'cold' }}",
    "Tags: {{ output.tags }}",
    "Dear {{ payload.nickname }}",
    "{{ context.callbackUrl }}",
)
TEMPLATE_REFUSALS: Final = (
    "{% for t in output.tags %}{{t}}{% endfor %}",
    "{{ score + 1 }}",
    "{{ first_name.upper() }}",
    "{{ first_name | replace('a', 'b') }}",
    "{% set x = 1 %}",
)
CONDITION_EXAMPLES: Final = (
    "score >= 50",
    'plan == "pro"',
    "visits > 10",
    'visits == "12"',
    'country in ["FR", "BE"]',
    '"hot" in output.tags',
    '"example.com" in email',
    'plan != "free" and not opted_in',
    "opted_in == false",
    "10 < score < 100",
    "payload.nickname == null",
    "payload.nickname > 3",
    "score > 50 or payload.vip",
)
CONDITION_REFUSALS: Final = (
    "score + 1 > 2",
    "len(tags) > 1",
    "output.tags[0] == 'hot'",
    "plan = 'pro'",
    "score > 1 && plan == 'pro'",
    "plan is None",
)
DURATION_EXAMPLES: Final = ("90s", "15m", "1h30m", "3d", "2w", "PT1H", "P1DT12H")
FUNCTION_EXAMPLES: Final = (
    """const visits = Number(payload.visits);
console.log("visits", visits, "plan", payload.plan);
return { score: visits * 5 + (payload.plan === "pro" ? 20 : 0), first: payload.first_name };""",
    "return { lead: output.crm.lead.id, record: context.recordId };",
    "return 42;",
    "undefinedThing.call();",
    "while (true) {}",
)


def render_reference(
    limits: FunctionLimits, run_function: RunFunction, callbacks: CallbackScheme
) -> str:
    parts = [
        _header(),
        _files(),
        _steps(),
        _templates(),
        _conditions(),
        _durations(),
        _functions(limits, run_function),
        _waits(),
        _callbacks(callbacks),
        _schema(),
    ]
    return "\n".join(parts).rstrip("\n") + "\n"


def _header() -> str:
    return f"""# The spinner language

<!-- Generated from models/spinner_language/ by `{REGENERATE}`; do not edit by hand. -->

A **spinner** is a small program run once per row of a data table: each row becomes a
**record** that walks the spinner's **steps**, reading the row's columns (its *metadata*),
calling out to the world, and ending with a status, a disposition and outputs you can read
in its **journey** (`cxgear journey RECORD_ID`). Steps are data, written in YAML and applied
with `cxgear spinners apply FILE.yml --publish`; a published version is frozen, so records
already running keep the version they started with.

Contents: [Spinner files](#spinner-files) · [Steps](#steps) · [Templates](#templates) ·
[Conditions](#conditions) · [Durations](#durations) ·
[The JavaScript function API](#the-javascript-function-api) · [Waits](#waits) ·
[Callbacks](#callbacks) · [JSON Schema](#json-schema)

Every example result below was computed by the code that runs spinners, against this record:

| | |
|---|---|
| metadata (the row) | `{_json(SAMPLE_METADATA)}` |
| outputs of earlier steps | `{_json(SAMPLE_OUTPUTS)}` |
"""


def _files() -> str:
    example = """name: Welcome
project: c3a4…            # or --project on the command line
publish: true
definition:
  steps:
    - id: hello
      type: log
      message: "Hello {{first_name}}"
      next: done
    - id: done
      type: tag
      disposition: Greeted
"""
    load_spinner_yaml(example)  # the example must stay a valid spinner file
    return f"""## Spinner files

```yaml
{example}```

{_settings_table(SpinnerFile)}
A **definition**:

{_settings_table(SpinnerDefinition)}
- At most {MAX_STEPS} steps. Step ids are unique; every `next`/branch target names a step;
  every step must be reachable from the start, and steps may not form a loop (a record
  always reaches an end).
- Unknown settings are errors (a typo never silently does nothing); numbers are read as text
  where text is expected (`tags: [2024]` is the tag `"2024"`).
- Files are read as YAML 1.2: `no`, `17:00` and `2024-01-01` stay text.
- Problems are reported with their place (`steps[2].branches[0].when`) by `spinners apply`,
  the API and the console. Errors block publishing; warnings (a template naming a column the
  project's tables do not have) do not.
"""


def _steps() -> str:
    lines = [
        "## Steps",
        "",
        "Every step has an `id`, a `type` and optionally a `name`. Steps that go on to one "
        "next step take `next`; leave it out to end the record there. What a step produces "
        "(its *outputs*) is readable by every later step, in templates as `{{output.x}}` (or "
        "plain `{{x}}`) and in conditions as `output.x` (or `x`).",
        "",
        "| type | what it does |",
        "|---|---|",
    ]
    for name, cls in STEP_CLASSES.items():
        lines.append(f"| [`{name}`](#{name}) | {_first_sentence(cls)} |")
    lines.append("")
    seen: set[type[StepBase]] = set()
    for cls in STEP_CLASSES.values():
        if cls in seen:
            continue
        seen.add(cls)
        names = [n for n, c in STEP_CLASSES.items() if c is cls]
        lines += [*(f'<a id="{n}"></a>' for n in names), ""]
        lines += [f"### {' / '.join(f'`{n}`' for n in names)}", ""]
        lines += [_doc(cls), "", _settings_table(cls, skip=("type",))]
        lines.append(f"**Routes to:** {_routes(cls)}")
        lines.append("")
        lines.append(f"**Outputs:** {cls.outputs_doc}")
        lines.append("")
        for nested in _nested_models(cls):
            lines += [f"A `{nested.__name__}`: {_doc(nested)}", "", _settings_table(nested)]
    return "\n".join(lines)


def _routes(cls: type[StepBase]) -> str:
    routing = cls.routing
    if routing == ("next",):
        return "`next`, or the end of the record when it is left out."
    if cls.__name__ == "DecisionStep":
        return "the `next` of the first branch whose `when` holds, else `default`."
    return ", ".join(f"`{r}`" for r in routing) + " (see the settings)."


def _nested_models(cls: type[BaseModel]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for info in cls.model_fields.values():
        for candidate in (Branch, Window):
            if candidate.__name__ in str(info.annotation) and candidate not in found:
                found.append(candidate)
    return found


def _settings_table(model: type[BaseModel], skip: Sequence[str] = ()) -> str:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    rows = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    for name, prop in schema["properties"].items():
        if name in skip:
            continue
        default = "*required*" if name in required else _default(prop)
        description = prop.get("description", "")
        if not description:
            raise ValueError(f"{model.__name__}.{name} has no description")
        rows.append(f"| `{name}` | {_type(prop)} | {default} | {_cell(description)} |")
    return "\n".join(rows) + "\n"


def _default(prop: Mapping[str, Any]) -> str:
    if "default" not in prop:
        return "—"
    value = prop["default"]
    if value is None:
        return "—"
    if value in ([], {}):
        return "empty"
    return f"`{_json(value) if not isinstance(value, str) else value}`"


def _type(prop: Mapping[str, Any]) -> str:
    if "$ref" in prop:
        name = str(prop["$ref"]).rsplit("/", 1)[-1]
        return f"a `{name}`"
    if "discriminator" in prop:
        return (
            f"steps, each one of the types below by its `{prop['discriminator']['propertyName']}`"
        )
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"] if p.get("type") != "null")
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object":
        values = prop.get("additionalProperties")
        return f"map of text → {_type(values)}" if isinstance(values, dict) else "object"
    words = {"string": "text", "integer": "integer", "number": "number", "boolean": "boolean"}
    text = words.get(str(kind), str(kind or "any"))
    bounds = _bounds(prop)
    return f"{text} {bounds}" if bounds else text


def _bounds(prop: Mapping[str, Any]) -> str:
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum", prop.get("exclusiveMaximum"))
    if low is None and high is None:
        return ""
    left = "" if low is None else f"{'>' if 'exclusiveMinimum' in prop else '≥'} {low}"
    right = "" if high is None else f"≤ {high}"
    return "(" + ", ".join(x for x in (left, right) if x) + ")"


def _templates() -> str:
    context_missing = set(CONTEXT_FIELDS) - set(CONTEXT_DOC)
    filters_missing = set(ALLOWED_FILTERS) - set(FILTER_EXAMPLES)
    tests_missing = set(ALLOWED_TESTS) - set(TEST_EXAMPLES)
    if context_missing or filters_missing or tests_missing:
        raise ValueError(
            "the reference needs an entry for "
            f"{sorted(context_missing | filters_missing | tests_missing)}"
        )
    examples = "\n".join(
        f"| `{_cell(source)}` | `{_cell(_render(source))}` |" for source in TEMPLATE_EXAMPLES
    )
    filters = "\n".join(
        f"| `{name}` | `{_cell(FILTER_EXAMPLES[name])}` | `{_cell(_render(FILTER_EXAMPLES[name]))}` |"
        for name in sorted(ALLOWED_FILTERS)
    )
    tests = "\n".join(
        f"| `{name}` | `{_cell(TEST_EXAMPLES[name])}` | `{_cell(_render(TEST_EXAMPLES[name]))}` |"
        for name in sorted(ALLOWED_TESTS)
    )
    refusals = "\n".join(
        f"| `{_cell(source)}` | {_cell(_template_error(source))} |" for source in TEMPLATE_REFUSALS
    )
    context = "\n".join(f"| `context.{name}` | {CONTEXT_DOC[name]} |" for name in CONTEXT_FIELDS)
    return f"""## Templates

Settings described as *a template* (messages, URLs, headers, bodies, tags…) are rendered for
each record with a small, sandboxed subset of Jinja: `{{{{ … }}}}` prints a value and
`{{% if %}}…{{% else %}}…{{% endif %}}` chooses text. Names:

| name | reads |
|---|---|
| `payload.x` | the row's column `x` (all CSV values are text) |
| `output.x` | output `x` of an earlier step |
| `x` | output `x` if an earlier step set it, else column `x` |
| `a.b.c`, `a["b c"]`, `a.list.0` | nested values and list items (fixed keys only) |
{context}

The reserved names are {", ".join(f"`{n}`" for n in NAMESPACES)}. A missing value renders as
`‹its.path›` so a typo shows in the output (and `spinners apply` warns when a name is neither
a column of the project's tables nor an output of an earlier step); `null` renders as
nothing; lists and objects render as JSON. A template is at most {MAX_TEMPLATE_LENGTH:,}
characters.

| template | renders |
|---|---|
{examples}

**Filters** (`value | filter(arguments)`), the only ones there are:

| filter | example | renders |
|---|---|---|
{filters}

**Tests** (`value is test`):

| test | example | renders |
|---|---|---|
{tests}

**Not available** — templates only read data:

| template | error |
|---|---|
{refusals}
"""


def _conditions() -> str:
    examples = "\n".join(
        f"| `{_cell(source)}` | {_cell(str(_evaluate(source)).lower())} |"
        for source in CONDITION_EXAMPLES
    )
    refusals = "\n".join(
        f"| `{_cell(source)}` | {_cell(_condition_error(source))} |"
        for source in CONDITION_REFUSALS
    )
    truthiness = ", ".join(
        f'`"{word}"` → {str(compile_expression("payload.w").evaluate({"w": word}, {}, {})).lower()}'
        for word in ("", "false", "0", "no", "null", "yes", "1")
    )
    return f"""## Conditions

A decision branch's `when` is a condition over the same names as templates (`payload.x`,
`output.x`, `context.x`, or a bare name), written without `{{{{ }}}}`:

- comparisons `==`, `!=`, `<`, `<=`, `>`, `>=` (chains like `1 < x < 10`), membership `in` /
  `not in` (an item in a list, a key in an object, text within text);
- `and`, `or`, `not`, parentheses;
- literals: numbers, `"text"` or `'text'`, `true`, `false`, `null`, lists `["a", "b"]`.

There are no functions, no arithmetic and no indexing: compute values in a `function` step
and compare its outputs. Because CSV values are text, comparisons coerce: a number against a
numeric text compares as numbers, `true`/`false` match `"true"`/`"false"`, and a comparison
that makes no sense (a missing value against a number, text against a number) is false, never
an error. A bare value as a condition is false when missing or null, and for text:
{truthiness}. A condition is at most {MAX_EXPRESSION_LENGTH:,} characters and
{MAX_DEPTH} levels deep.

| condition | result |
|---|---|
{examples}

Refused, with the message you get:

| condition | error |
|---|---|
{refusals}
"""


def _durations() -> str:
    rows = "\n".join(
        f"| `{text}` | {_human(parse_duration(text).total_seconds())} |"
        for text in DURATION_EXAMPLES
    )
    return f"""## Durations

Waits and timeouts take a duration: a number and a unit (`w`, `d`, `h`, `m`, `s`), units
combined largest first, or ISO-8601 (`PT…`, no years or months). It must be more than zero
and at most {MAX_DURATION.days} days.

| duration | means |
|---|---|
{rows}
"""


def _functions(limits: FunctionLimits, run_function: RunFunction) -> str:
    timeout = FunctionStep.model_fields["timeout_ms"]
    memory = FunctionStep.model_fields["memory_mb"]
    schema = FunctionStep.model_json_schema()["properties"]
    blocks = []
    for code in FUNCTION_EXAMPLES:
        result = run_function(code, SAMPLE_METADATA, SAMPLE_OUTPUTS, SAMPLE_CONTEXT)
        if result.ok:
            outcome = f"outputs `{_json(result.outputs)}`"
        else:
            outcome = f"the record fails: `function failed: {result.error}`"
        logs = f"; journey lines `{_json(result.logs)}`" if result.logs else ""
        blocks.append(f"```javascript\n{code}\n```\n→ {outcome}{logs}\n")
    examples = "\n".join(blocks)
    return f"""## The JavaScript function API

A `function` step's `code` is the **body** of a JavaScript function called as
`function (payload, output, context, console)`:

- `payload`: the row's columns (an object of text values); `output`: the outputs of earlier
  steps; `context`: {", ".join(f"`{n}`" for n in CONTEXT_FIELDS)}. All three are copies:
  changing them changes nothing else.
- It must `return` a plain object; each key becomes an output of the step (replacing an
  earlier output of that name). Anything else (a number, an array, a Promise) fails the record.
- `console.log` / `info` / `warn` / `error` / `debug` write lines to the journey: at most
  {limits.max_log_lines} lines of {limits.max_log_line_chars:,} characters per call.
- The returned object, as JSON, is at most {limits.max_output_chars:,} characters.
- Running time is limited by `timeout_ms` (default {timeout.default:,}, at most
  {schema["timeout_ms"]["maximum"]:,}) and memory by `memory_mb` (default {memory.default},
  at most {schema["memory_mb"]["maximum"]}).
- The code runs in V8 with the standard built-ins only (`JSON`, `Math`, `Date`, `Intl`,
  `RegExp`, typed arrays…): no `require`/`import`, no network, no files, no timers
  (`setTimeout` throws); the code is synchronous. Built-ins are frozen, and the global scope is
  wiped between records, so one record can never see another's data.
- An exception fails the record with its message and the line and column in your code; a
  failing function is not retried (it would fail the same way). Fix it and re-drive the job's
  failed records (`cxgear jobs redrive JOB`).

Run against the example record:

{examples}"""


def _waits() -> str:
    return """## Waits

A record can wait for minutes or weeks: a wait is a durable timer in Temporal, so stopping the
workers (or the whole stack) loses nothing, and the record carries on when they are back. A
waiting record leaves its job's window of running records, so thousands of records waiting
for replies never hold up the rest of a campaign; the job counts them as *waiting*.

- [`wait`](#wait): for a `duration`, until a date-time in the row (`until_field`), or until a
  local-time `window` opens (office hours in the contact's time zone).
- [`wait_for_callback`](#wait_for_callback): until a signed callback reaches the record's URL
  (see Callbacks), with `on_callback` / `on_timeout` branches.
- [`whatsapp` / `sms` / `email`](#whatsapp) with `wait_for: reply` or `delivery` and a
  `timeout`, branching to `on_replied`, `on_delivered`, `on_failed` or `on_no_reply`.

A callback that arrives before the record reaches its `wait_for_callback` step is kept and
taken by that step; one that arrives after the record ended is stored as *late* (answered
`{"ok": true, "late": true}`).
"""


def _callbacks(scheme: CallbackScheme) -> str:
    example_headers = "\n".join(f"{k}: {v}" for k, v in scheme.example_headers.items())
    return f"""## Callbacks

Each record has its own callback address, `POST {scheme.route}`, the token
random per record: it is the record's `callback_url` in the API, and templates and functions
get it as `context.callbackUrl`. Hand it to an outside system (in an `api_call` body, say)
and let the record wait for it in a `wait_for_callback` step. The body is JSON; an object
becomes the step's `callback` output as is (`{{{{callback.status}}}}`), any other JSON value
arrives as `{{"value": …}}`.

The route needs no sign-in: it checks a [Standard Webhooks](https://www.standardwebhooks.com/)
signature made with the organization's **callback secret** (`whsec_` followed by base64).
`cxgear callbacks rotate-secret` (or `POST {scheme.rotate_route}`, permission
`vault.write`) creates it and shows it, the only time it is shown; calling it again replaces
the secret, and the previous one keeps verifying for `CXGEAR_CALLBACK_SECRET_OVERLAP`
({_human(scheme.default_overlap_s)} by default; `--immediate`, or `{{"immediate": true}}`,
ends it at once, after a leak). `cxgear callbacks secret` (`GET {scheme.status_route}`,
`vault.read`) tells whether there is one and until when the previous one verifies, never the
secret.

The sender adds three headers:

- `{scheme.id_header}`: the sender's unique id for the event, at most {scheme.id_max_chars}
  characters. A redelivery with the same id is answered `{{"ok": true, "duplicate": true}}`
  and has no second effect; an id already accepted for another record is refused
  (`409 EVENT_ID_REUSED`).
- `{scheme.timestamp_header}`: the current Unix time in seconds; more than {scheme.window_s} s
  away from the server's clock is refused.
- `{scheme.signature_header}`: `v1,` followed by the base64 HMAC-SHA256 of
  `{{{scheme.id_header}}}.{{{scheme.timestamp_header}}}.{{body}}` (the exact bytes sent),
  keyed with the base64-decoded part of the secret after `whsec_`.

Any Standard Webhooks library signs them (in Python, the `standardwebhooks` package). An
unknown callback URL and any signature failure get the same `403 BAD_SIGNATURE`, so the
answer tells nobody whether a record exists; a body that is not JSON is `422`.

In Python (standard library only; this is `examples/callback_signing.py`, which the examples'
CRM stub uses):

```python
{scheme.python_source.rstrip()}
```

With curl and openssl (`examples/send_callback.sh`):

```bash
{scheme.curl_source.rstrip()}
```

Worked example: with the secret
`{scheme.example_secret}`, the event id `{scheme.example_msg_id}`, the
timestamp `{scheme.example_timestamp}` and the body `{scheme.example_body}`, the headers are

```text
{example_headers}
```
"""


def _schema() -> str:
    return """## JSON Schema

The API publishes the definition's JSON Schema at `GET /api/v1/spinners/schema` (no sign-in
needed), and the OpenAPI document at `/docs` uses it for the `definition` of spinner create
and update bodies. Point an editor at it to get completion and checks while writing
`definition:` by hand. Drafts may be incomplete: the API stores any JSON object as a draft and
lists its problems in `issues`; only publishing needs a valid definition.
"""


def _render(source: str) -> str:
    return render_template(
        source, metadata=SAMPLE_METADATA, outputs=SAMPLE_OUTPUTS, context=SAMPLE_CONTEXT
    )


def _template_error(source: str) -> str:
    try:
        _render(source)
    except TemplateError as exc:
        return str(exc)
    raise ValueError(f"the template {source!r} is listed as refused but renders")


def _evaluate(source: str) -> bool:
    return compile_expression(source).evaluate(SAMPLE_METADATA, SAMPLE_OUTPUTS, SAMPLE_CONTEXT)


def _condition_error(source: str) -> str:
    try:
        compile_expression(source)
    except ExpressionError as exc:
        return str(exc)
    raise ValueError(f"the condition {source!r} is listed as refused but compiles")


def _human(seconds: float) -> str:
    units = (("week", 604_800), ("day", 86_400), ("hour", 3600), ("minute", 60), ("second", 1))
    parts = []
    left = int(seconds)
    for name, size in units:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " ".join(parts)


def _doc(cls: type) -> str:
    text = " ".join((cls.__doc__ or "").split())
    if not text:
        raise ValueError(f"{cls.__name__} has no docstring")
    return text


def _first_sentence(cls: type) -> str:
    text = _doc(cls)
    end = text.find(". ")
    return _cell(text if end < 0 else text[: end + 1])


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
