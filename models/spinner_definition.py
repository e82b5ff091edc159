"""The spinner definition language: steps, their settings and the YAML file format.

A definition is what gets frozen when a spinner is published, so every model refuses
unknown settings: a typo must show up as an error, not silently do nothing.

Adding a step type means adding its class to `Step` and its entry to `_OUTPUTS`.
A step that routes anywhere other than `next`, or that holds templates, conditions
or metadata column names, also overrides the matching `*_fields` hook so validation
can locate problems in it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from models.templating import NAMESPACES

__all__ = [
    "AiAgentStep",
    "ApiCallStep",
    "Branch",
    "EmailStep",
    "MessageStep",
    "DAYS",
    "DecisionStep",
    "DefinitionError",
    "FunctionStep",
    "LogStep",
    "MAX_STEPS",
    "STEP_TYPES",
    "SpinnerDefinition",
    "SpinnerFile",
    "Step",
    "TagStep",
    "ValidationIssue",
    "WaitForCallbackStep",
    "WaitStep",
    "Window",
    "declared_outputs",
    "definition_hash",
    "dump_spinner_yaml",
    "issues_from_validation_error",
    "load_spinner_yaml",
    "parse_duration",
    "step_targets",
]

MAX_STEPS: Final = 100
MAX_DURATION: Final = timedelta(days=365)
DayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: Final[tuple[DayName, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_STEP_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*$")
# Same grammar as the HTTP client's response paths: `data.items[0].id`, optional `$.`.
_JSON_PATH = re.compile(r"^(?:[^.\[\]]+|\[-?\d+\])(?:\.[^.\[\]]+|\[-?\d+\])*$")
_SHORT_DURATION = re.compile(r"^(?:\d+[wdhms])+$", re.IGNORECASE)
_SHORT_PART = re.compile(r"(\d+)([wdhms])", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_HH_MM = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")
_UNITS: Final = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


@dataclass(frozen=True)
class ValidationIssue:
    """One problem in a definition, located so an editor can point at it.

    Lives here rather than in spinner_validation (which re-exports it) because
    reading a YAML file already reports issues and validation imports this module.
    """

    level: Literal["error", "warning"]
    step_id: str | None
    path: str
    message: str


class DefinitionError(ValueError):
    """A spinner file or definition that cannot be read; `issues` says where and why."""

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = issues
        lines = [f"{i.path}: {i.message}" if i.path else i.message for i in issues]
        super().__init__("invalid spinner definition:\n  " + "\n  ".join(lines))


def parse_duration(text: str) -> timedelta:
    """Parse "90s", "15m", "2h", "3d", "1h30m", "2w" or ISO-8601 like "PT1H" / "P1DT12H".

    Raises ValueError unless the duration is positive and at most 365 days.
    """
    raw = text.strip() if isinstance(text, str) else ""
    parts: dict[str, float] = {}
    if _SHORT_DURATION.match(raw):
        for amount, unit in _SHORT_PART.findall(raw):
            key = _UNITS[unit.lower()]
            parts[key] = parts.get(key, 0) + int(amount)
    elif (match := _ISO_DURATION.match(raw)) and raw.upper() != "P":
        parts = {k: float(v) for k, v in match.groupdict().items() if v}
    else:
        raise ValueError(
            f"{text!r} is not a duration; use 90s, 15m, 2h, 3d or ISO-8601 like PT1H "
            "(years and months are not supported)"
        )
    try:
        value = timedelta(**parts)
    except OverflowError:
        value = timedelta.max
    if value <= timedelta(0):
        raise ValueError(f"duration {text!r} must be longer than zero")
    if value > MAX_DURATION:
        raise ValueError(f"duration {text!r} is longer than 365 days")
    return value


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text.strip()


def _check_step_id(value: str) -> str:
    if not _STEP_ID.match(value):
        raise ValueError(
            f"step id {value!r} must start with a lowercase letter and contain only "
            "lowercase letters, digits and underscores (at most 63 characters)"
        )
    return value


def _check_time_zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name like Europe/Paris"
        ) from None
    return value


def _check_hh_mm(value: str) -> str:
    if not _HH_MM.match(value):
        raise ValueError(f"{value!r} is not a 24-hour time like 09:00")
    return value


StepId = Annotated[str, AfterValidator(_check_step_id)]
Duration = Annotated[str, AfterValidator(_check_duration)]
Text = Annotated[str, StringConstraints(min_length=1)]
ColumnName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class _Model(BaseModel):
    # Numbers become text where text is expected: `tags: [2024]` in YAML means "2024".
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class StepBase(_Model):
    """Fields and validation hooks every step has. Paths returned by the hooks are
    relative to the step, like "branches[0].when"."""

    id: StepId
    name: Annotated[str, StringConstraints(max_length=200)] | None = None

    # Settings that route elsewhere instead of `next`; named when `next` is refused.
    routing: ClassVar[tuple[str, ...]] = ("next",)

    def target_fields(self) -> list[tuple[str, str]]:
        """(path, step id) of every outgoing edge."""
        return []

    def template_fields(self) -> list[tuple[str, str]]:
        """(path, template source) of every templated setting."""
        return []

    def expression_fields(self) -> list[tuple[str, str]]:
        """(path, condition source) of every condition."""
        return []

    def metadata_fields(self) -> list[tuple[str, str]]:
        """(path, column name) of every setting that names a metadata column."""
        return []


class LinearStep(StepBase):
    """A step that continues with `next` (None ends the path)."""

    next: str | None = None

    def target_fields(self) -> list[tuple[str, str]]:
        return [("next", self.next)] if self.next is not None else []


class LogStep(LinearStep):
    type: Literal["log"]
    message: Text
    level: Literal["info", "warning", "error"] = "info"

    def template_fields(self) -> list[tuple[str, str]]:
        return [("message", self.message)]


class TagStep(LinearStep):
    type: Literal["tag"]
    disposition: str | None = None
    tags: list[Text] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sets_something(self) -> TagStep:
        if not self.disposition and not self.tags:
            raise ValueError("a tag step needs a disposition or at least one tag")
        return self

    def template_fields(self) -> list[tuple[str, str]]:
        fields = [("disposition", self.disposition)] if self.disposition else []
        return fields + [(f"tags[{i}]", tag) for i, tag in enumerate(self.tags)]


class Branch(_Model):
    when: Text
    label: Label
    next: str


class DecisionStep(StepBase):
    type: Literal["decision"]
    branches: list[Branch]
    default: str

    routing: ClassVar[tuple[str, ...]] = ("branches", "default")

    def target_fields(self) -> list[tuple[str, str]]:
        edges = [(f"branches[{i}].next", b.next) for i, b in enumerate(self.branches)]
        return [*edges, ("default", self.default)]

    def expression_fields(self) -> list[tuple[str, str]]:
        return [(f"branches[{i}].when", b.when) for i, b in enumerate(self.branches)]


class Window(_Model):
    """A local-time window; `end` before `start` means it runs past midnight."""

    start: Annotated[str, AfterValidator(_check_hh_mm)]
    end: Annotated[str, AfterValidator(_check_hh_mm)]
    days: list[DayName] = Field(default_factory=lambda: list(DAYS))
    timezone_field: ColumnName | None = None
    timezone: Annotated[str | None, AfterValidator(_check_time_zone)] = None

    @field_validator("days")
    @classmethod
    def _days_listed_once(cls, days: list[DayName]) -> list[DayName]:
        if not days:
            raise ValueError("name at least one day")
        if len(set(days)) != len(days):
            raise ValueError("each day may be listed once")
        return days

    @model_validator(mode="after")
    def _not_empty(self) -> Window:
        if self.start == self.end:
            raise ValueError("the window's start and end must differ")
        return self


class WaitStep(LinearStep):
    type: Literal["wait"]
    duration: Duration | None = None
    until_field: ColumnName | None = None
    window: Window | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WaitStep:
        chosen = [x for x in (self.duration, self.until_field, self.window) if x is not None]
        if len(chosen) != 1:
            raise ValueError("a wait step needs exactly one of duration, until_field or window")
        return self

    def metadata_fields(self) -> list[tuple[str, str]]:
        fields = [("until_field", self.until_field)] if self.until_field else []
        if self.window is not None and self.window.timezone_field:
            fields.append(("window.timezone_field", self.window.timezone_field))
        return fields


class WaitForCallbackStep(StepBase):
    type: Literal["wait_for_callback"]
    timeout: Duration
    on_callback: str
    on_timeout: str

    routing: ClassVar[tuple[str, ...]] = ("on_callback", "on_timeout")

    def target_fields(self) -> list[tuple[str, str]]:
        return [("on_callback", self.on_callback), ("on_timeout", self.on_timeout)]


class FunctionStep(LinearStep):
    type: Literal["function"]
    code: Text
    timeout_ms: int = Field(default=1000, ge=1, le=10_000)
    memory_mb: int = Field(default=32, ge=1, le=256)


class ApiCallStep(LinearStep):
    type: Literal["api_call"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    url: Text
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    outputs: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=10, gt=0, le=120)
    bearer_secret: str | None = None
    # Header name → Vault secret name; the value is read inside the activity, never templated.
    secret_headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for header in headers:
            if not _HEADER_NAME.match(header):
                raise ValueError(f"{header!r} is not a valid HTTP header name")
        return headers

    @field_validator("outputs")
    @classmethod
    def _output_paths(cls, outputs: dict[str, str]) -> dict[str, str]:
        for field, path in outputs.items():
            if not _FIELD_NAME.match(field) or field in NAMESPACES:
                raise ValueError(
                    f"output name {field!r} must be letters, digits and underscores, "
                    f"and not one of {', '.join(NAMESPACES)}, so templates can use it"
                )
            bare = path.strip().removeprefix("$").lstrip(".")
            if not bare or not _JSON_PATH.match(bare):
                raise ValueError(
                    f"output {field!r}: {path!r} is not a response path like data.items[0].id "
                    "(or status)"
                )
        return outputs

    @field_validator("bearer_secret")
    @classmethod
    def _secret_name(cls, name: str | None) -> str | None:
        if name is not None and not _SECRET_NAME.match(name):
            raise ValueError(f"{name!r} is not a secret name like crm_token or crm/token")
        return name

    def template_fields(self) -> list[tuple[str, str]]:
        fields = [("url", self.url)]
        fields += [(f"headers.{k}", v) for k, v in self.headers.items()]
        if self.body is not None:
            fields.append(("body", self.body))
        return fields

    @field_validator("secret_headers")
    @classmethod
    def _secret_header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for header, secret in headers.items():
            if not _HEADER_NAME.match(header):
                raise ValueError(f"{header!r} is not a valid HTTP header name")
            if not _SECRET_NAME.match(secret):
                raise ValueError(f"{secret!r} is not a secret name like crm_token or crm/token")
        return headers


OutputName = Annotated[str, AfterValidator(lambda v: _check_output_name(v))]


def _check_output_name(value: str) -> str:
    if not _FIELD_NAME.match(value) or value in NAMESPACES:
        raise ValueError(
            f"output name {value!r} must be letters, digits and underscores, "
            f"and not one of {', '.join(NAMESPACES)}, so templates can use it"
        )
    return value


class AiAgentStep(LinearStep):
    """An LLM call: `role` (agent role and rules) as the system prompt, `task` per record."""

    type: Literal["ai_agent"]
    integration_id: Text
    role: Text
    task: Text
    model: str | None = None
    temperature: float = Field(default=0.2, ge=0, le=2)
    mode: Literal["text", "key_value", "classification", "list"] = "text"
    output: OutputName = "ai_response"
    keys: list[OutputName] = Field(default_factory=list)
    labels: list[Label] = Field(default_factory=list)
    timeout_s: float = Field(default=120, gt=0, le=120)

    @model_validator(mode="after")
    def _mode_settings(self) -> AiAgentStep:
        if self.mode == "key_value" and not self.keys:
            raise ValueError("key_value mode needs the list of keys to extract")
        if self.mode == "classification" and len(self.labels) < 2:
            raise ValueError("classification mode needs at least two labels")
        return self

    def template_fields(self) -> list[tuple[str, str]]:
        return [("role", self.role), ("task", self.task)]


class _SendStep(StepBase):
    """A message on a channel, optionally waiting for its result with a branch per outcome."""

    channel_id: Text
    wait_for: Literal["none", "delivery", "reply"] = "none"
    timeout: Duration | None = None
    next: str | None = None
    on_replied: str | None = None
    on_delivered: str | None = None
    on_failed: str | None = None
    on_no_reply: str | None = None

    routing: ClassVar[tuple[str, ...]] = (
        "next",
        "on_replied",
        "on_delivered",
        "on_failed",
        "on_no_reply",
    )

    @model_validator(mode="after")
    def _wait_settings(self) -> _SendStep:
        if self.wait_for != "none" and self.timeout is None:
            raise ValueError(f"waiting for {self.wait_for} needs a timeout like 24h")
        return self

    def target_fields(self) -> list[tuple[str, str]]:
        return [(name, getattr(self, name)) for name in self.routing if getattr(self, name)]


class MessageStep(_SendStep):
    """WhatsApp or SMS through Twilio: free text, or (WhatsApp) an approved template."""

    type: Literal["whatsapp", "sms"]
    to: Text = "{{phone}}"
    body: str | None = None
    template_sid: str | None = None
    template_variables: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _content(self) -> MessageStep:
        if self.template_sid is not None and self.type != "whatsapp":
            raise ValueError("templates (template_sid) are for WhatsApp only")
        if (self.body is None) == (self.template_sid is None):
            raise ValueError("a message needs exactly one of body or template_sid")
        return self

    def template_fields(self) -> list[tuple[str, str]]:
        fields = [("to", self.to)]
        if self.body is not None:
            fields.append(("body", self.body))
        return fields + [(f"template_variables.{k}", v) for k, v in self.template_variables.items()]


class EmailStep(_SendStep):
    """An email through SendGrid; replies are not tracked, delivery is."""

    type: Literal["email"]
    to: Text = "{{email}}"
    subject: Text
    body: Text
    html: bool = False

    @model_validator(mode="after")
    def _no_reply_wait(self) -> EmailStep:
        if self.wait_for == "reply":
            raise ValueError("email can wait for delivery, not for a reply")
        return self

    def template_fields(self) -> list[tuple[str, str]]:
        return [("to", self.to), ("subject", self.subject), ("body", self.body)]


def _ai_outputs(step: AiAgentStep) -> frozenset[str]:
    return frozenset(step.keys) if step.mode == "key_value" else frozenset({step.output})


SEND_OUTPUTS: Final = frozenset({"message_id", "message_status", "reply", "disposition"})

Step = Annotated[
    LogStep
    | TagStep
    | DecisionStep
    | WaitStep
    | WaitForCallbackStep
    | FunctionStep
    | ApiCallStep
    | AiAgentStep
    | MessageStep
    | EmailStep,
    Field(discriminator="type"),
]

# Outputs a step adds for later steps; None means "unknown, anything" (a function
# returns whatever its code returns).
_OUTPUTS: Final[dict[type[StepBase], Callable[[Any], frozenset[str] | None]]] = {
    LogStep: lambda step: frozenset(),
    TagStep: lambda step: frozenset({"disposition", "tags"}),
    DecisionStep: lambda step: frozenset(),
    WaitStep: lambda step: frozenset(),
    WaitForCallbackStep: lambda step: frozenset({"callback"}),
    FunctionStep: lambda step: None,
    ApiCallStep: lambda step: frozenset(step.outputs),
    AiAgentStep: _ai_outputs,
    MessageStep: lambda step: SEND_OUTPUTS,
    EmailStep: lambda step: SEND_OUTPUTS,
}

if set(get_args(get_args(Step)[0])) != set(_OUTPUTS):
    raise TypeError("every step class in Step needs an entry in _OUTPUTS, and only those")

_STEP_CLASSES: Final[dict[str, type[StepBase]]] = {
    name: cls for cls in _OUTPUTS for name in get_args(cls.model_fields["type"].annotation)
}
STEP_TYPES: Final[tuple[str, ...]] = tuple(_STEP_CLASSES)


def declared_outputs(step: StepBase) -> frozenset[str] | None:
    """Output names the step sets for later steps; None when they cannot be known."""
    return _OUTPUTS[type(step)](step)


def step_targets(step: StepBase) -> list[str]:
    """Every step id this step can continue with."""
    return [target for _, target in step.target_fields()]


class SpinnerDefinition(_Model):
    # The 100-step limit is checked by validation so it is reported with a location
    # like every other problem, instead of as a parse failure.
    steps: list[Step] = Field(min_length=1)
    start: str | None = None

    def start_id(self) -> str:
        return self.start or self.steps[0].id


def definition_hash(definition: SpinnerDefinition) -> str:
    """sha256 of the canonical JSON form: equal definitions hash equally whatever key
    order or default values they were written with."""
    canonical = json.dumps(
        definition.model_dump(mode="json"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def issues_from_validation_error(exc: ValidationError, data: Any) -> list[ValidationIssue]:
    """Turn pydantic's errors into issues with paths like `steps[1].type`.

    `data` is the input that failed, used to name the step each problem is in.
    """
    issues: list[ValidationIssue] = []
    for error in exc.errors(include_url=False):
        loc, step_type, step_data = _step_loc(error["loc"], data)
        path = _format_path(loc)
        message = _error_message(error, loc, step_type)
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = f"{path}.type" if path else "type"
        step_id = step_data.get("id") if isinstance(step_data, dict) else None
        issue = ValidationIssue(
            "error", step_id if isinstance(step_id, str) else None, path, message
        )
        if issue not in issues:
            issues.append(issue)
    return issues


def _step_loc(loc: tuple[int | str, ...], data: Any) -> tuple[list[int | str], str | None, Any]:
    """Drop the union tag pydantic puts right after a step's index (`steps.1.log.message`)
    and find the input of the step the error is in."""
    cleaned: list[int | str] = []
    step_type: str | None = None
    step_data: Any = None
    node: Any = data
    for part in loc:
        at_step = len(cleaned) >= 2 and cleaned[-2] == "steps" and isinstance(cleaned[-1], int)
        if at_step and step_type is None and part in _STEP_CLASSES:
            step_type = str(part)
            continue
        cleaned.append(part)
        if isinstance(node, dict) and isinstance(part, str):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        if isinstance(part, int) and len(cleaned) >= 2 and cleaned[-2] == "steps":
            step_data = node
    return cleaned, step_type, step_data


def _format_path(loc: list[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _error_message(error: ErrorDetails, loc: list[int | str], step_type: str | None) -> str:
    kind = error["type"]
    field = loc[-1] if loc else None
    if kind == "union_tag_invalid":
        tag = (error.get("ctx") or {}).get("tag")
        return f"unknown step type '{tag}'; expected one of {', '.join(STEP_TYPES)}"
    if kind == "union_tag_not_found":
        return f"missing step type; expected one of {', '.join(STEP_TYPES)}"
    if kind == "extra_forbidden":
        cls = _STEP_CLASSES.get(step_type or "")
        if field == "next" and cls is not None and "next" not in cls.model_fields:
            return (
                f"unknown setting 'next': a {step_type} step continues with "
                f"{' and '.join(cls.routing)}"
            )
        return f"unknown setting '{field}'"
    if kind == "missing":
        return f"missing required setting '{field}'"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a mapping of settings" if loc else "expected a mapping with 'steps'"
    if kind == "too_short" and field == "steps":
        return "a spinner needs at least one step"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


class SpinnerFile(_Model):
    """A spinner kept in a repository and applied with `cxgear spinners apply`."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: str | None = None
    project: str | None = None
    publish: bool = False
    definition: SpinnerDefinition


def load_spinner_yaml(text: str) -> SpinnerFile:
    """Read a spinner file; raises DefinitionError with located issues."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DefinitionError(
            [ValidationIssue("error", None, "", f"invalid YAML{where}: {problem}")]
        ) from None
    if not isinstance(data, dict):
        raise DefinitionError(
            [ValidationIssue("error", None, "", "a spinner file must be a YAML mapping")]
        )
    try:
        return SpinnerFile.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(issues_from_validation_error(exc, data)) from None


_STEP_KEY_ORDER: Final = ("id", "type", "name")


def dump_spinner_yaml(spinner: SpinnerFile) -> str:
    """YAML that `load_spinner_yaml` reads back to an equal SpinnerFile; unset and
    default settings are left out so the file shows only what was chosen."""
    data = spinner.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    data["definition"]["steps"] = [_readable_step(step) for step in data["definition"]["steps"]]
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def _readable_step(data: dict[str, Any]) -> dict[str, Any]:
    """id, type and name first and `next` last, as people read a step."""
    head = {k: data[k] for k in _STEP_KEY_ORDER if k in data}
    tail = {"next": data["next"]} if "next" in data else {}
    body = {k: v for k, v in data.items() if k not in head and k not in tail}
    return head | body | tail


# YAML 1.1 reads `no` as false, `17:00` as 1020 and `2024-01-01` as a date, which
# turns tags, windows and labels into nonsense; spinner files use the YAML 1.2 core
# scalars instead (true/false, null, plain decimal numbers).
_CORE_RESOLVERS: Final = (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", r"^[-+]?(?:0|[1-9][0-9]*)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^[-+]?(?:(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)$",
        "-+.0123456789",
    ),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
)


class _Loader(yaml.SafeLoader):
    """Safe loading (plain data only) with the YAML 1.2 core scalars."""


_Loader.yaml_implicit_resolvers = {}


class _Dumper(yaml.SafeDumper):
    """Multi-line text (function code, message bodies) as `|` blocks; text that either
    YAML 1.1 or 1.2 would read as something else is quoted."""


for _tag, _pattern, _first in _CORE_RESOLVERS:
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
    _Dumper.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
