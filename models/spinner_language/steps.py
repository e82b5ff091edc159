"""The steps of the spinner language: one model per step type, with its settings.

Adding a step type means adding its class to `Step` and its entry to `_OUTPUTS`.
A step that routes anywhere other than `next`, or that holds templates, conditions
or metadata column names, also overrides the matching `*_fields` hook so validation
can locate problems in it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Final, Literal, get_args

from pydantic import Field, StringConstraints, field_validator, model_validator

from models.spinner_language.fields import (
    DAYS,
    HEADER_NAME,
    JSON_PATH,
    SECRET_NAME,
    ClockTime,
    ColumnName,
    DayName,
    Duration,
    Label,
    OutputName,
    StepId,
    StrictModel,
    Text,
    TimeZoneName,
    check_output_name,
)

__all__ = [
    "AiAgentStep",
    "ApiCallStep",
    "Branch",
    "DecisionStep",
    "EmailStep",
    "FunctionStep",
    "LogStep",
    "MessageStep",
    "STEP_CLASSES",
    "STEP_TYPES",
    "Step",
    "StepBase",
    "TagStep",
    "WaitForCallbackStep",
    "WaitStep",
    "Window",
    "declared_outputs",
    "step_targets",
]


class StepBase(StrictModel):
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


class Branch(StrictModel):
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


class Window(StrictModel):
    """A local-time window; `end` before `start` means it runs past midnight."""

    start: ClockTime
    end: ClockTime
    days: list[DayName] = Field(default_factory=lambda: list(DAYS))
    timezone_field: ColumnName | None = None
    timezone: TimeZoneName = None

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
            if not HEADER_NAME.match(header):
                raise ValueError(f"{header!r} is not a valid HTTP header name")
        return headers

    @field_validator("outputs")
    @classmethod
    def _output_paths(cls, outputs: dict[str, str]) -> dict[str, str]:
        for field, path in outputs.items():
            check_output_name(field)
            bare = path.strip().removeprefix("$").lstrip(".")
            if not bare or not JSON_PATH.match(bare):
                raise ValueError(
                    f"output {field!r}: {path!r} is not a response path like data.items[0].id "
                    "(or status)"
                )
        return outputs

    @field_validator("bearer_secret")
    @classmethod
    def _secret_name(cls, name: str | None) -> str | None:
        if name is not None and not SECRET_NAME.match(name):
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
            if not HEADER_NAME.match(header):
                raise ValueError(f"{header!r} is not a valid HTTP header name")
            if not SECRET_NAME.match(secret):
                raise ValueError(f"{secret!r} is not a secret name like crm_token or crm/token")
        return headers


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

STEP_CLASSES: Final[dict[str, type[StepBase]]] = {
    name: cls for cls in _OUTPUTS for name in get_args(cls.model_fields["type"].annotation)
}
STEP_TYPES: Final[tuple[str, ...]] = tuple(STEP_CLASSES)


def declared_outputs(step: StepBase) -> frozenset[str] | None:
    """Output names the step sets for later steps; None when they cannot be known."""
    return _OUTPUTS[type(step)](step)


def step_targets(step: StepBase) -> list[str]:
    """Every step id this step can continue with."""
    return [target for _, target in step.target_fields()]
