"""Problems in a definition, located (`steps[1].type`) so an editor can point at them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from models.spinner_language.steps import STEP_CLASSES, STEP_TYPES

__all__ = ["DefinitionError", "ValidationIssue", "issues_from_validation_error"]


@dataclass(frozen=True)
class ValidationIssue:
    """One problem in a definition, located so an editor can point at it."""

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
        if at_step and step_type is None and part in STEP_CLASSES:
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
        cls = STEP_CLASSES.get(step_type or "")
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
