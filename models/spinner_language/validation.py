"""Checks on a whole spinner definition, each reported as a located `ValidationIssue`.

Errors block publishing; warnings point at likely typos (a template naming a column
the project does not have) but a spinner with warnings still runs.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from models.spinner_language.definition import MAX_STEPS, SpinnerDefinition
from models.spinner_language.errors import ValidationIssue, issues_from_validation_error
from models.spinner_language.expressions import ExpressionError, compile_expression
from models.spinner_language.steps import StepBase, declared_outputs, step_targets
from models.spinner_language.templating import (
    CONTEXT_FIELDS,
    NAMESPACES,
    TemplateError,
    template_references,
)

__all__ = ["parse_definition", "validate_definition"]


def parse_definition(data: Any) -> tuple[SpinnerDefinition | None, list[ValidationIssue]]:
    """Read a stored or submitted definition; on failure, (None, located errors)."""
    try:
        return SpinnerDefinition.model_validate(data), []
    except ValidationError as exc:
        return None, issues_from_validation_error(exc, data)


def validate_definition(
    definition: SpinnerDefinition, metadata_fields: list[str], where: str = "the project"
) -> list[ValidationIssue]:
    """Every problem in a parsed definition, errors and warnings, grouped by check.

    `where` names the source of `metadata_fields` in warnings ("the project", "table 'x'").
    """
    return _Checker(definition, metadata_fields, where).run()


class _Checker:
    def __init__(
        self, definition: SpinnerDefinition, metadata_fields: list[str], where: str
    ) -> None:
        self.definition = definition
        self.steps = definition.steps
        self.fields = set(metadata_fields)
        self.where = where
        self.issues: list[ValidationIssue] = []
        # The first step with an id wins; later duplicates are reported and ignored.
        self.index: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            self.index.setdefault(step.id, i)
        # Edges only between existing steps: dangling targets are reported on their own.
        self.edges: dict[str, list[str]] = {
            owner.id: [t for t in step_targets(owner) if t in self.index]
            for owner in self._unique_steps()
        }
        self.reverse: dict[str, list[str]] = {step_id: [] for step_id in self.edges}
        for source, targets in self.edges.items():
            for target in targets:
                self.reverse[target].append(source)

    def run(self) -> list[ValidationIssue]:
        self._check_size()
        self._check_ids()
        self._check_start()
        self._check_targets()
        self._check_reachable()
        self._check_cycles()
        self._check_conditions_and_templates()
        return self.issues

    def _error(self, step: StepBase | None, path: str, message: str) -> None:
        self.issues.append(ValidationIssue("error", step.id if step else None, path, message))

    def _warn(self, step: StepBase | None, path: str, message: str) -> None:
        self.issues.append(ValidationIssue("warning", step.id if step else None, path, message))

    def _path(self, step: StepBase, suffix: str) -> str:
        return f"steps[{self.index[step.id]}].{suffix}"

    def _unique_steps(self) -> Iterable[StepBase]:
        """Steps that own their id; paths of these are found through `index`."""
        return (s for i, s in enumerate(self.steps) if self.index[s.id] == i)

    def _check_size(self) -> None:
        if len(self.steps) > MAX_STEPS:
            self._error(
                None,
                "steps",
                f"a spinner can have at most {MAX_STEPS} steps; this one has {len(self.steps)}",
            )

    def _check_ids(self) -> None:
        for i, step in enumerate(self.steps):
            first = self.index[step.id]
            if first != i:
                self._error(
                    step, f"steps[{i}].id", f"duplicate step id '{step.id}' (also steps[{first}])"
                )

    def _check_start(self) -> None:
        start = self.definition.start
        if start is not None and start not in self.index:
            self._error(None, "start", f"start step '{start}' does not exist")

    def _check_targets(self) -> None:
        for i, step in enumerate(self.steps):
            for suffix, target in step.target_fields():
                if target not in self.index:
                    hint = _did_you_mean(target, self.index)
                    self._error(
                        step,
                        f"steps[{i}].{suffix}",
                        f"goes to step '{target}', which does not exist{hint}",
                    )

    def _start_id(self) -> str | None:
        start = self.definition.start_id()
        return start if start in self.index else None

    def _check_reachable(self) -> None:
        start = self._start_id()
        if start is None:
            return
        reached = _reachable([start], self.edges)
        for step in self._unique_steps():
            if step.id not in reached:
                self._error(
                    step,
                    f"steps[{self.index[step.id]}]",
                    f"step '{step.id}' can never run: no path from the start step "
                    f"'{start}' leads to it",
                )

    def _check_cycles(self) -> None:
        seen: set[frozenset[str]] = set()
        for cycle in _cycles(self.edges):
            key = frozenset(cycle)
            if key in seen:
                continue
            seen.add(key)
            last = self.steps[self.index[cycle[-1]]]
            suffix = next(s for s, t in last.target_fields() if t == cycle[0])
            loop = " → ".join([*cycle, cycle[0]])
            self._error(
                last,
                self._path(last, suffix),
                f"steps form a loop: {loop}; a record must always reach an end",
            )

    def _outputs_before(self, step: StepBase) -> set[str] | None:
        """Outputs set by any step on some path leading here; None if one is unknowable."""
        outputs: set[str] = set()
        for step_id in _reachable(self.reverse[step.id], self.reverse):
            declared = declared_outputs(self.steps[self.index[step_id]])
            if declared is None:
                return None
            outputs |= declared
        return outputs

    def _check_conditions_and_templates(self) -> None:
        for step in self._unique_steps():
            outputs = self._outputs_before(step)
            for suffix, source in step.expression_fields():
                try:
                    refs = compile_expression(source).references()
                except ExpressionError as exc:
                    self._error(step, self._path(step, suffix), f"invalid condition: {exc}")
                    continue
                self._check_references(step, suffix, refs, outputs)
            for suffix, source in step.template_fields():
                try:
                    refs = template_references(source)
                except TemplateError as exc:
                    self._error(step, self._path(step, suffix), f"invalid template: {exc}")
                    continue
                self._check_references(step, suffix, refs, outputs)
            for suffix, column in step.metadata_fields():
                if column not in self.fields:
                    hint = _did_you_mean(column, self.fields)
                    self._warn(
                        step,
                        self._path(step, suffix),
                        f"'{column}' is not a metadata field of {self.where}{hint}",
                    )

    def _check_references(
        self, step: StepBase, suffix: str, refs: list[str], outputs: set[str] | None
    ) -> None:
        for ref in refs:
            message = self._reference_problem(ref, outputs)
            if message is not None:
                self._warn(step, self._path(step, suffix), message)

    def _reference_problem(self, ref: str, outputs: set[str] | None) -> str | None:
        parts = ref.split(".")
        root = parts[0]
        if root in NAMESPACES and len(parts) == 1:
            return None
        if root == "payload":
            if parts[1] in self.fields:
                return None
            hint = _did_you_mean(parts[1], self.fields, prefix="payload.")
            return f"'{ref}': {self.where} has no metadata field '{parts[1]}'{hint}"
        if root == "context":
            if parts[1] in CONTEXT_FIELDS:
                return None
            return f"'{ref}': the context has no '{parts[1]}' (it has {', '.join(CONTEXT_FIELDS)})"
        # What a function step returns cannot be known before it runs.
        if outputs is None:
            return None
        if root == "output":
            if parts[1] in outputs:
                return None
            hint = _did_you_mean(parts[1], outputs, prefix="output.")
            return f"'{ref}': no earlier step sets an output '{parts[1]}'{hint}"
        if root in self.fields or root in outputs:
            return None
        within = f" in '{ref}'" if ref != root else ""
        hint = _did_you_mean(root, self.fields | outputs)
        return (
            f"unknown name '{root}'{within}: it is neither a metadata field nor an output "
            f"of an earlier step{hint}"
        )


def _did_you_mean(word: str, candidates: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(word, sorted(candidates), n=1)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def _reachable(roots: Iterable[str], edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    queue = deque(roots)
    while queue:
        node = queue.popleft()
        if node in seen:
            continue
        seen.add(node)
        queue.extend(edges.get(node, []))
    return seen


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per back edge found by a depth-first walk, each as the steps in order."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for root in edges:
        if root in state:
            continue
        path: list[str] = [root]
        state[root] = 1
        stack = [iter(edges[root])]
        # Iterative so a long chain of steps cannot hit the recursion limit.
        while stack:
            target = next(stack[-1], None)
            if target is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(target) == 1:
                found.append(path[path.index(target) :])
            elif target not in state:
                state[target] = 1
                path.append(target)
                stack.append(iter(edges[target]))
    return found
