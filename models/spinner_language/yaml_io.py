"""The spinner file format: a definition with its name, read from and written to YAML."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

import yaml
from pydantic import Field, StringConstraints, ValidationError

from models.spinner_language.definition import SpinnerDefinition
from models.spinner_language.errors import (
    DefinitionError,
    ValidationIssue,
    issues_from_validation_error,
)
from models.spinner_language.fields import StrictModel

__all__ = ["SpinnerFile", "dump_spinner_yaml", "load_spinner_yaml"]


class SpinnerFile(StrictModel):
    """A spinner kept in a repository and applied with `cxgear spinners apply`."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = (
        Field(description="The spinner's name; `apply` updates the spinner of that name.")
    )
    description: str | None = Field(default=None, description="Shown in the console.")
    project: str | None = Field(
        default=None, description="Id of the project (else `--project` on the command line)."
    )
    publish: bool = Field(
        default=False, description="Publish a new version after applying (also `--publish`)."
    )
    definition: SpinnerDefinition = Field(description="The steps (below).")


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
