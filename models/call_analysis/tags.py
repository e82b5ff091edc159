"""Tag definitions of a call_analyzer project and the checks that keep a tag set evaluable.

A tag's name is how conditions (derived tags, scorecard questions) refer to it: `greeting`
reads whether the tag hit, `count.apology` how many times a bag-of-words tag matched and
`value.reason` what a GenAI extract tag found.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from graphlib import CycleError, TopologicalSorter
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Tag, TypeAdapter, field_validator
from pydantic import Field as PydField
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import PublicModel, RequestBody, created_field, jsonb_field, org_field
from models.call_analysis.text import normalise
from models.fields import SafeStr
from models.spinner_language.expressions import Expression, ExpressionError, compile_expression

TAG_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
# Roots conditions read specially (see the module docstring) or that the expression language
# keeps for itself; a tag of that name could never be referred to.
RESERVED_NAMES = frozenset(
    {"count", "value", "payload", "output", "context", "true", "false", "null"}
)
MAX_PHRASES = 200

TagName = Annotated[str, PydField(pattern=TAG_NAME_PATTERN)]
Phrase = Annotated[SafeStr, PydField(min_length=1, max_length=200)]


class TagKind(StrEnum):
    metadata = "metadata"
    bag_of_words = "bag_of_words"
    genai = "genai"
    derived = "derived"


class TagSetError(ValueError):
    """A tag set that cannot be evaluated; `code` is the API's errorCode."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def checked_condition(source: str) -> str:
    try:
        compile_expression(source)
    except ExpressionError as exc:
        raise ValueError(f"condition: {exc}") from None
    return source


Condition = Annotated[
    SafeStr, PydField(min_length=1, max_length=2000), AfterValidator(checked_condition)
]


class _TagBase(RequestBody):
    name: TagName
    description: Annotated[SafeStr, PydField(max_length=1000)] = ""

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_NAMES:
            raise ValueError(f"'{name}' is reserved; choose another tag name")
        return name


class MetadataTag(_TagBase):
    """Hits when a condition over the call's fields holds (`direction == "inbound"`)."""

    kind: Literal["metadata"]
    condition: Condition


class BagOfWordsTag(_TagBase):
    """Hits when the phrases are said at least `minCount` times (by one speaker if given)."""

    kind: Literal["bag_of_words"]
    phrases: Annotated[list[Phrase], PydField(min_length=1, max_length=MAX_PHRASES)]
    speaker: Annotated[SafeStr, PydField(min_length=1, max_length=50)] | None = None
    min_count: Annotated[int, PydField(ge=1, le=10_000)] = 1

    @field_validator("phrases")
    @classmethod
    def _words_in_phrases(cls, phrases: list[str]) -> list[str]:
        if any(not normalise(p).strip() for p in phrases):
            raise ValueError("a phrase must contain letters or digits")
        return phrases


class GenAIMode(StrEnum):
    yes_no = "yes_no"
    extract = "extract"


class GenAITag(_TagBase):
    """Judged by the LLM: yes/no, or a value extracted; one LLM call per `group`."""

    kind: Literal["genai"]
    question: Annotated[SafeStr, PydField(min_length=1, max_length=2000)]
    mode: GenAIMode = GenAIMode.yes_no
    group: Annotated[str, PydField(pattern=TAG_NAME_PATTERN)] = "default"


class DerivedTag(_TagBase):
    """Logic over other tags' results (`greeting and not rude`)."""

    kind: Literal["derived"]
    condition: Condition


def _kind_of(value: Any) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if isinstance(kind, str) else None


# A callable discriminator: RequestBody's catch-all "before" validator rules out pydantic's
# field-based one, and an unknown kind should still be a 422 naming the field.
TagDefinition = Annotated[
    Annotated[MetadataTag, Tag("metadata")]
    | Annotated[BagOfWordsTag, Tag("bag_of_words")]
    | Annotated[GenAITag, Tag("genai")]
    | Annotated[DerivedTag, Tag("derived")],
    Discriminator(_kind_of),
]
TAG_ADAPTER: TypeAdapter[MetadataTag | BagOfWordsTag | GenAITag | DerivedTag] = TypeAdapter(
    TagDefinition
)
AnyTag = MetadataTag | BagOfWordsTag | GenAITag | DerivedTag


def tag_from_json(data: dict[str, Any]) -> AnyTag:
    return TAG_ADAPTER.validate_python(data)


def tag_references(expression: Expression) -> list[str]:
    """The tag names a condition over tags reads (`greeting`, `count.apology` → apology)."""
    names: list[str] = []
    for ref in expression.references():
        parts = ref.split(".")
        name = parts[1] if parts[0] in ("count", "value") and len(parts) > 1 else parts[0]
        if name not in names:
            names.append(name)
    return names


def check_references(condition: str, known: Iterable[str], where: str) -> list[str]:
    """Refuse a condition naming a tag that does not exist (TAG_UNKNOWN)."""
    names = tag_references(compile_expression(condition))
    known_set = set(known)
    unknown = [n for n in names if n not in known_set]
    if unknown:
        raise TagSetError(
            f"{where} refers to unknown tag(s): {', '.join(sorted(unknown))}", "TAG_UNKNOWN"
        )
    return names


def derived_order(tags: Sequence[AnyTag]) -> list[DerivedTag]:
    """The derived tags in an order where each comes after the derived tags it reads.

    Raises TagSetError TAG_UNKNOWN for a reference to no tag, TAG_CYCLE for a cycle, and
    TAG_DUPLICATE for two tags of one name.
    """
    names = [t.name for t in tags]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise TagSetError(f"Tag names must be unique: {', '.join(dupes)}", "TAG_DUPLICATE")
    derived = {t.name: t for t in tags if isinstance(t, DerivedTag)}
    graph: dict[str, set[str]] = {}
    for tag in derived.values():
        refs = check_references(tag.condition, names, f"Derived tag '{tag.name}'")
        graph[tag.name] = {r for r in refs if r in derived}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = " → ".join(exc.args[1])
        raise TagSetError(f"Derived tags form a cycle: {cycle}", "TAG_CYCLE") from None
    return [derived[name] for name in order]


class CallTag(SQLModel, table=True):
    __tablename__ = "call_tag"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_call_tag_project_name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    org_id: uuid.UUID = org_field()
    project_id: uuid.UUID = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    # The whole definition as accepted (camelCase), name and kind included.
    definition: dict[str, Any] = jsonb_field(dict)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class CallTagPublic(PublicModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    kind: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CallTagsPublic(PublicModel):
    data: list[CallTagPublic]
    count: int
