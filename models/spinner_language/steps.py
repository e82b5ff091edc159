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
    "ApplyTagsStep",
    "Branch",
    "DecisionStep",
    "EmailStep",
    "FunctionStep",
    "LogStep",
    "MessageStep",
    "QaScoreStep",
    "STEP_CLASSES",
    "STEP_TYPES",
    "Step",
    "StepBase",
    "SummarizeStep",
    "TagStep",
    "TranscribeStep",
    "WaitForCallbackStep",
    "WaitStep",
    "Window",
    "declared_outputs",
    "step_targets",
]


class StepBase(StrictModel):
    """Fields and validation hooks every step has. Paths returned by the hooks are
    relative to the step, like "branches[0].when"."""

    id: StepId = Field(
        description="Unique within the spinner; other steps route here by this id and the "
        "journey names the step by it. A lowercase letter, then lowercase letters, digits "
        "and underscores (at most 63 characters)."
    )
    name: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        default=None, description="A readable name for the console and journeys."
    )

    # What the step adds to the record's outputs, in words for the reference; the names
    # themselves come from `declared_outputs`.
    outputs_doc: ClassVar[str] = "Nothing."

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

    next: str | None = Field(
        default=None,
        description="Id of the step to run after this one; leave it out to end the record here.",
    )

    def target_fields(self) -> list[tuple[str, str]]:
        return [("next", self.next)] if self.next is not None else []


class LogStep(LinearStep):
    """Writes a line to the record's journey: a template rendered for the record."""

    type: Literal["log"]
    message: Text = Field(description="The line to write; a template.")
    level: Literal["info", "warning", "error"] = Field(
        default="info", description="How the line is marked in the journey."
    )

    def template_fields(self) -> list[tuple[str, str]]:
        return [("message", self.message)]


class TagStep(LinearStep):
    """Sets the record's disposition (its outcome, shown on the Records page and filterable)
    and adds tags. Needs a disposition or at least one tag."""

    type: Literal["tag"]
    disposition: str | None = Field(
        default=None,
        description="The record's outcome, like Qualified; a template. A later tag step "
        "replaces it.",
    )
    tags: list[Text] = Field(
        default_factory=list,
        description="Labels added to the record (each a template); later tag steps add more.",
    )

    outputs_doc: ClassVar[str] = (
        "`disposition` (the text set) and `tags` (every tag so far, in order)."
    )

    @model_validator(mode="after")
    def _sets_something(self) -> TagStep:
        if not self.disposition and not self.tags:
            raise ValueError("a tag step needs a disposition or at least one tag")
        return self

    def template_fields(self) -> list[tuple[str, str]]:
        fields = [("disposition", self.disposition)] if self.disposition else []
        return fields + [(f"tags[{i}]", tag) for i, tag in enumerate(self.tags)]


class Branch(StrictModel):
    """One way out of a decision: taken when its condition holds."""

    when: Text = Field(description="A condition (see Conditions), like `score >= 50`.")
    label: Label = Field(description="The branch's name in the journey and the console.")
    next: str = Field(description="Id of the step to run when the condition holds.")


class DecisionStep(StepBase):
    """Chooses where the record goes: the first branch whose condition holds, else `default`."""

    type: Literal["decision"]
    branches: list[Branch] = Field(description="Tried in order; the first that holds wins.")
    default: str = Field(description="Id of the step to run when no branch holds.")

    routing: ClassVar[tuple[str, ...]] = ("branches", "default")

    def target_fields(self) -> list[tuple[str, str]]:
        edges = [(f"branches[{i}].next", b.next) for i, b in enumerate(self.branches)]
        return [*edges, ("default", self.default)]

    def expression_fields(self) -> list[tuple[str, str]]:
        return [(f"branches[{i}].when", b.when) for i, b in enumerate(self.branches)]


class Window(StrictModel):
    """A local-time window; `end` before `start` means it runs past midnight."""

    start: ClockTime = Field(description="Opening time, 24-hour `HH:MM`.")
    end: ClockTime = Field(description="Closing time, 24-hour `HH:MM`.")
    days: list[DayName] = Field(
        default_factory=lambda: list(DAYS),
        description="Days the window is open (`mon` … `sun`, each once); every day by default.",
    )
    timezone_field: ColumnName | None = Field(
        default=None,
        description="Metadata column holding the contact's IANA time zone (like Europe/Paris); "
        "it wins when the row has a value (an unknown zone fails the record).",
    )
    timezone: TimeZoneName = Field(
        default=None,
        description="IANA time zone used when `timezone_field` is unset or empty for the row; "
        "without either, the project's time zone (else UTC).",
    )

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
    """Pauses the record durably (a worker restart does not lose it): for a duration, until
    a date-time from its row, or until a local-time window opens. Exactly one of the three.
    A waiting record leaves its job's active window, so long waits never hold up a campaign."""

    type: Literal["wait"]
    duration: Duration | None = Field(
        default=None, description="How long to wait, like `15m` (see Durations)."
    )
    until_field: ColumnName | None = Field(
        default=None,
        description="Metadata column holding an ISO-8601 date-time to wait until (without an "
        "offset: in the project's time zone); a time already past continues at once, a value "
        "that is not a date-time fails the record.",
    )
    window: Window | None = Field(
        default=None,
        description="Wait until this local-time window is open (continues at once inside it).",
    )

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
    """Waits for a signed HTTP callback to the record's own URL (`{{context.callbackUrl}}`,
    see Callbacks), typically handed to an outside system by an earlier `api_call`."""

    type: Literal["wait_for_callback"]
    timeout: Duration = Field(description="How long to wait, like `24h` (see Durations).")
    on_callback: str = Field(description="Id of the step to run when a callback arrives.")
    on_timeout: str = Field(description="Id of the step to run when none came in time.")

    outputs_doc: ClassVar[str] = (
        "`callback`: the callback's JSON body (an object; any other JSON value arrives as "
        '`{"value": …}`), so later steps read `{{callback.status}}`.'
    )

    routing: ClassVar[tuple[str, ...]] = ("on_callback", "on_timeout")

    def target_fields(self) -> list[tuple[str, str]]:
        return [("on_callback", self.on_callback), ("on_timeout", self.on_timeout)]


class FunctionStep(LinearStep):
    """Runs a small JavaScript function for the record (see The JavaScript function API)."""

    type: Literal["function"]
    code: Text = Field(
        description="The body of a function of `(payload, output, context, console)` that "
        "returns an object; its keys become outputs."
    )
    timeout_ms: int = Field(
        default=1000, ge=1, le=10_000, description="Time the call may run, in milliseconds."
    )
    memory_mb: int = Field(
        default=32, ge=1, le=256, description="Memory the call may use, in megabytes."
    )

    outputs_doc: ClassVar[str] = (
        "Every key of the object the code returns, with its value (any JSON value)."
    )


def json_templates(path: str, value: Any) -> list[tuple[str, str]]:
    """(path, template) of every string leaf of a structured body."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in json_templates(f"{path}.{k}", v)]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in json_templates(f"{path}[{i}]", v)]
    return []


class ApiCallStep(LinearStep):
    """Calls an HTTP API and keeps parts of its JSON answer as outputs. A 2xx answer
    continues; 408, 429 and 5xx are retried (honouring `Retry-After`); any other status,
    an address the operator has not allowed, or an answer over 1 MB fails the record.
    Private and loopback addresses are refused unless listed in the operator's
    `CXGEAR_HTTP_ALLOWED_HOSTS`."""

    type: Literal["api_call"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field(description="HTTP method.")
    url: Text = Field(description="The address to call; a template.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Header name → value; each value is a template."
    )
    body: str | dict[str, Any] | list[Any] | None = Field(
        default=None,
        description="The request body. An object or list is sent as JSON: each string in it is "
        "a template, rendered and then JSON-encoded, so a quote or a newline in a value can "
        "never break the document; a string that is only `{{ x | int }}` or `{{ x | float }}` "
        "becomes a JSON number. A plain string is sent as written (a template), for non-JSON "
        "bodies; write JSON bodies as objects.",
    )
    form: dict[str, str] | None = Field(
        default=None,
        description="A form body (`application/x-www-form-urlencoded`): field → template, each "
        "value rendered and then URL-encoded. Not with `body`.",
    )
    query: dict[str, str] = Field(
        default_factory=dict,
        description="Query parameters added to `url`: name → template, each value rendered and "
        "then URL-encoded (a `&` or `#` in a value stays inside it).",
    )
    outputs: dict[str, str] = Field(
        default_factory=dict,
        description="Output name → path in the JSON answer, like `data.items[0].id` (`$.` "
        "prefix optional); the path `status` is the HTTP status code. A path the answer "
        "lacks gives null.",
    )
    timeout_s: float = Field(
        default=10, gt=0, le=120, description="Seconds to wait for an answer per attempt."
    )
    bearer_secret: str | None = Field(
        default=None,
        description="Name of a Vault secret sent as `Authorization: Bearer <value>`; read by "
        "the worker at call time, never shown in journeys.",
    )
    # Header name → Vault secret name; the value is read inside the activity, never templated.
    secret_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Header name → Vault secret name, for APIs that take a key in a header "
        "like `X-Api-Key`.",
    )

    outputs_doc: ClassVar[str] = "One per entry of `outputs`, named by its key."

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

    @model_validator(mode="after")
    def _one_body(self) -> ApiCallStep:
        if self.body is not None and self.form is not None:
            raise ValueError("give either body or form, not both")
        if (
            isinstance(self.body, str)
            and self.body.lstrip()[:1] in ("{", "[")
            and "{{" in self.body
        ):
            raise ValueError(
                "a JSON body with templates must be written as an object or list (body: "
                "{name: '{{name}}'}), so each value is JSON-encoded; as a string, a value with a "
                "quote in it would break the document"
            )
        return self

    def template_fields(self) -> list[tuple[str, str]]:
        fields = [("url", self.url)]
        fields += [(f"headers.{k}", v) for k, v in self.headers.items()]
        fields += [(f"query.{k}", v) for k, v in self.query.items()]
        fields += [(f"form.{k}", v) for k, v in (self.form or {}).items()]
        fields += json_templates("body", self.body)
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
    integration_id: Text = Field(
        description="Id of an `openai` (or `mock`) integration of the organization."
    )
    role: Text = Field(description="The system prompt: the agent's role and rules; a template.")
    task: Text = Field(description="What to do for this record; a template.")
    model: str | None = Field(default=None, description="Model name; the integration's default.")
    temperature: float = Field(default=0.2, ge=0, le=2, description="Sampling temperature.")
    mode: Literal["text", "key_value", "classification", "list"] = Field(
        default="text",
        description="`text`: the answer as is; `key_value`: a JSON object with `keys`; "
        "`classification`: one of `labels`; `list`: a list of strings. An answer that does "
        "not fit the mode gets one corrective retry.",
    )
    output: OutputName = Field(
        default="ai_response", description="Output name for the answer (all modes but key_value)."
    )
    keys: list[OutputName] = Field(
        default_factory=list, description="key_value mode: the keys to extract, each an output."
    )
    labels: list[Label] = Field(
        default_factory=list, description="classification mode: the labels (at least two)."
    )
    timeout_s: float = Field(
        default=120, gt=0, le=120, description="Seconds to wait for the model per attempt."
    )

    outputs_doc: ClassVar[str] = (
        "key_value mode: one output per entry of `keys`; other modes: `output` "
        "(`ai_response` unless renamed)."
    )

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

    channel_id: Text = Field(description="Id of the channel (number or sender) to send from.")
    wait_for: Literal["none", "delivery", "reply"] = Field(
        default="none",
        description="`none` continues once sent; `delivery` or `reply` waits for that "
        "result (up to `timeout`) and branches on it.",
    )
    timeout: Duration | None = Field(
        default=None, description="How long to wait when `wait_for` is set, like `24h`."
    )
    next: str | None = Field(
        default=None,
        description="Id of the step to run next (when not waiting, or when the matching "
        "`on_*` is unset); leave it out to end the record.",
    )
    on_replied: str | None = Field(default=None, description="Next step when a reply came.")
    on_delivered: str | None = Field(
        default=None, description="Next step when the message was delivered."
    )
    on_failed: str | None = Field(
        default=None, description="Next step when sending or delivery failed."
    )
    on_no_reply: str | None = Field(default=None, description="Next step when the wait timed out.")

    outputs_doc: ClassVar[str] = (
        "`message_id`, `message_status`, `reply` (the reply's text, when waiting for one) and "
        "`disposition` (Opted out for an address on the do-not-contact list)."
    )

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
    to: Text = Field(default="{{phone}}", description="The recipient's number; a template.")
    body: str | None = Field(default=None, description="Free text; a template.")
    template_sid: str | None = Field(
        default=None, description="WhatsApp only: an approved Twilio content template's SID."
    )
    template_variables: dict[str, str] = Field(
        default_factory=dict,
        description='The template\'s variables (`"1"` → value); each value is a template.',
    )

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
    to: Text = Field(default="{{email}}", description="The recipient's address; a template.")
    subject: Text = Field(description="A template.")
    body: Text = Field(description="A template.")
    html: bool = Field(default=False, description="Send `body` as HTML instead of plain text.")

    @model_validator(mode="after")
    def _no_reply_wait(self) -> EmailStep:
        if self.wait_for == "reply":
            raise ValueError("email can wait for delivery, not for a reply")
        return self

    def template_fields(self) -> list[tuple[str, str]]:
        return [("to", self.to), ("subject", self.subject), ("body", self.body)]


TRANSCRIBE_OUTPUTS: Final = frozenset(
    {"call_duration_s", "utterance_count", "speaker_count", "word_count", "no_speech"}
)


class TranscribeStep(LinearStep):
    """Transcribes the record's call recording, speaker-separated, on the `stt` task queue.

    The recording is downloaded from a storage integration (`s3`: an `s3://bucket/key` URL or
    a key under the integration's prefix; `https`: a URL, under the same address rules as
    `api_call`) in chunks, checked (WAV, MP3, OGG, FLAC, M4A/MP4 or WebM) and sent to the STT
    integration (`deepgram`, or `mock_stt`, which reads the transcript file stored beside the
    recording: `<name>.txt` with lines like `agent: hello`, or `<name>.json`). The transcript
    is stored with the record, not in its outputs. A missing, empty or unsupported recording
    fails the record with a clear error; a call without speech ends with the outcome
    `no_speech`. A retried attempt reuses the transcript already stored for the record instead
    of asking the provider again, and the organization's monthly `call analyses` meter is
    charged once, when the transcript is first stored."""

    type: Literal["transcribe"]
    recording: Text = Field(
        default="{{recording_url}}",
        description="Where the recording is; a template (the row's `recording_url` by default).",
    )
    stt_integration_id: Text | None = Field(
        default=None,
        description="Id of a `deepgram` or `mock_stt` integration; the project's call setup's "
        "when left out.",
    )
    storage_integration_id: Text | None = Field(
        default=None,
        description="Id of an `s3` or `https` integration; the project's call setup's when left "
        "out (outside a call_analyzer project the recording must then be an https URL).",
    )
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")] | (
        None
    ) = Field(default=None, description="Language code (e.g. `en`, `es-419`); the model's default.")
    timeout_s: float = Field(
        default=3600,
        gt=0,
        le=14400,
        description="Seconds the download and transcription may take per attempt (long calls "
        "take minutes); progress is reported meanwhile.",
    )

    outputs_doc: ClassVar[str] = (
        "`call_duration_s`, `utterance_count`, `speaker_count`, `word_count` and `no_speech` "
        "(true when nobody spoke). The utterances themselves are stored with the record."
    )

    def template_fields(self) -> list[tuple[str, str]]:
        return [("recording", self.recording)]


class SummarizeStep(LinearStep):
    """Summarizes the call's stored transcript with an LLM, on the `llm` task queue. A call
    without speech is not sent to the model: its summary is empty and the outcome
    `no_speech`. In a call_analyzer project it then writes the call's **analysed call** (the
    transcript, the tags of `apply_tags`, the score of `qa_score`, the summary, durations), once
    per record."""

    type: Literal["summarize"]
    llm_integration_id: Text | None = Field(
        default=None,
        description="Id of an `openai` (or `mock`) integration of the organization; the "
        "project's call setup's when left out.",
    )
    prompt: Text | None = Field(
        default=None,
        description="The instruction given with the transcript; a template. The project's call "
        "setup's summary prompt when left out.",
    )
    model: str | None = Field(default=None, description="Model name; the integration's default.")
    output: OutputName = Field(default="summary", description="Output name for the summary.")
    timeout_s: float = Field(
        default=120, gt=0, le=120, description="Seconds to wait for the model per attempt."
    )

    outputs_doc: ClassVar[str] = "`output` (`summary` unless renamed)."

    def template_fields(self) -> list[tuple[str, str]]:
        return [("prompt", self.prompt)] if self.prompt is not None else []


APPLY_TAGS_OUTPUTS: Final = frozenset({"hit_tags", "hit_count"})


class ApplyTagsStep(LinearStep):
    """Evaluates the project's call tags on the stored transcript and the row's call fields,
    on the `llm` task queue: metadata tags (conditions on the fields), bag-of-words tags
    (phrases said, with the utterances as evidence), GenAI tags (one LLM call per tag group,
    the quoted utterance as evidence) and derived tags (logic over the others). The results
    with their evidence are stored with the record, not in its outputs. A call without speech
    asks no model: only its metadata tags (and what derives from them) can hit."""

    type: Literal["apply_tags"]
    llm_integration_id: Text | None = Field(
        default=None,
        description="Id of an `openai` (or `mock`) integration for the GenAI tags; the "
        "project's call setup's when left out.",
    )
    model: str | None = Field(default=None, description="Model name; the integration's default.")
    timeout_s: float = Field(
        default=120, gt=0, le=120, description="Seconds to wait for the model per tag group."
    )

    outputs_doc: ClassVar[str] = (
        "`hit_tags` (the names of the tags that hit) and `hit_count`. The evidence is stored "
        "with the record."
    )


QA_SCORE_OUTPUTS: Final = frozenset({"score", "max_score", "percent", "band"})


class QaScoreStep(LinearStep):
    """Scores the call with the project's current scorecard (the version published last) over
    the tags of `apply_tags`, and grades it Good / Fair / Poor with the setup's bands. The
    breakdown and a snapshot of the scorecard version are stored with the record, so later
    edits of the scorecard never change this result. A call without speech is not scored
    (band `no_speech`); a project without a scorecard gives band `unscored`."""

    type: Literal["qa_score"]

    outputs_doc: ClassVar[str] = (
        "`score`, `max_score`, `percent` and `band` (`good`, `fair`, `poor`, or `no_speech` / "
        "`unscored`)."
    )


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
    | EmailStep
    | TranscribeStep
    | ApplyTagsStep
    | QaScoreStep
    | SummarizeStep,
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
    TranscribeStep: lambda step: TRANSCRIBE_OUTPUTS,
    ApplyTagsStep: lambda step: APPLY_TAGS_OUTPUTS,
    QaScoreStep: lambda step: QA_SCORE_OUTPUTS,
    SummarizeStep: lambda step: frozenset({step.output}),
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
