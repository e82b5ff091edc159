"""Mutation check of the replay tests: a timer slipped into any branch of a workflow must make
some committed history fail to replay.

Each async method of the workflow classes is rewritten, one branch at a time, with
`await workflow.sleep(1)` as the branch's first statement (an `if` without `else` gets one holding
only the timer). The mutated module is compiled from the real source into a fresh module and its
workflow class replaces the real one in a Replayer over every committed history. A mutant that
replays cleanly means no history walks that branch: record one (tests/workflows/record_histories.py)
or exempt the branch below, with the reason.

Synchronous code (signal and query handlers, helpers) cannot issue a command, so it has no branch to
mutate: what it changes shows up in the commands of the async code that reads it.
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from workflows.registry import ALL_WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
MODULES = [
    "workflows.record_workflow",
    "workflows.job_workflow",
    "workflows.scheduled_run_workflow",
]

# "Class.method: what the branch is" -> why no committed history walks it.
EXEMPT: dict[str, str] = {
    "RecordWorkflow._start_supporting: except ActivityError": (
        "prepare_supporting failing all 10 attempts (minutes of backoff against a database that"
        " stays down); the record is already complete and the branch only logs"
    ),
    "RecordWorkflow._run_step: else of `if kind == 'api_call'`": (
        "a step type this worker does not know: plans are validated against the same step types"
        " when published, so no execution reaches it"
    ),
    "RecordWorkflow._await_send_result: `if remaining <= 0`": (
        "a non-final status handled at the very instant the send's deadline passes; otherwise the"
        " timer ends the wait (`except TimeoutError`, covered by record_send_outcomes)"
    ),
    "JobWorkflow._cancel_all: except TimeoutError": (
        "a cancelled record's report lost for 15 s (a worker crash between the record's end and"
        " its report); the sweep it runs is the one replayed by job_pause_sweep_resume"
    ),
}


@dataclass(frozen=True)
class Site:
    """One branch of an async workflow method: where the timer goes."""

    module: str
    cls: str
    method: str
    line: int
    kind: str
    # Path from the method to the statement list the timer is inserted into.
    path: tuple[tuple[str, int | None], ...]

    @property
    def key(self) -> str:
        return f"{self.cls}.{self.method}: {self.kind} (line {self.line})"

    @property
    def short(self) -> str:
        return f"{self.cls}.{self.method}: {self.kind}"


def _blocks(
    node: ast.AST, path: tuple[tuple[str, int | None], ...]
) -> Iterator[tuple[str, int, tuple[tuple[str, int | None], ...]]]:
    """(kind, line, path) of every statement list under `node`, not entering nested functions."""
    for field in ("body", "orelse", "finalbody", "handlers"):
        stmts = getattr(node, field, None)
        if not isinstance(stmts, list):
            continue
        if field == "handlers":
            for i, handler in enumerate(stmts):
                caught = ast.unparse(handler.type) if handler.type is not None else "anything"
                yield (
                    f"except {caught}",
                    handler.lineno,
                    (*path, ("handlers", i), ("body", None)),
                )
                yield from _children(handler.body, (*path, ("handlers", i), ("body", None)))
            continue
        here = (*path, (field, None))
        if field == "orelse" and isinstance(node, ast.If):
            if not stmts:
                yield f"else of `if {ast.unparse(node.test)}`", node.lineno, here
                continue
            if len(stmts) == 1 and isinstance(stmts[0], ast.If):
                # An `elif`: its own body and else are the branches.
                yield from _children(stmts, here)
                continue
        if not stmts:
            continue
        line = getattr(node, "lineno", stmts[0].lineno)
        yield _describe(node, field), line, here
        yield from _children(stmts, here)


def _children(
    stmts: list[ast.stmt], path: tuple[tuple[str, int | None], ...]
) -> Iterator[tuple[str, int, tuple[tuple[str, int | None], ...]]]:
    for i, stmt in enumerate(stmts):
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        *head, (field, _) = path
        yield from _blocks(stmt, (*head, (field, i)))


def _describe(node: ast.AST, field: str) -> str:
    if isinstance(node, ast.AsyncFunctionDef):
        return "method body"
    if isinstance(node, ast.If):
        test = ast.unparse(node.test)
        return f"`if {test}`" if field == "body" else f"else of `if {test}`"
    if isinstance(node, ast.While | ast.For | ast.AsyncFor):
        head = ast.unparse(node.test if isinstance(node, ast.While) else node.iter)
        return f"loop over `{head}`" if field == "body" else f"loop else `{head}`"
    if isinstance(node, ast.Try):
        return {"body": "try body", "orelse": "try else", "finalbody": "finally"}[field]
    return f"{type(node).__name__.lower()} {field}"


def _workflow_methods(tree: ast.Module) -> Iterator[tuple[ast.ClassDef, ast.AsyncFunctionDef]]:
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        if not any("defn" in ast.unparse(d) for d in cls.decorator_list):
            continue
        for item in cls.body:
            if isinstance(item, ast.AsyncFunctionDef):
                yield cls, item


def sites() -> list[Site]:
    found: list[Site] = []
    for module in MODULES:
        tree = ast.parse(Path(importlib.import_module(module).__file__ or "").read_text())
        for cls, fn in _workflow_methods(tree):
            where = (("body", tree.body.index(cls)), ("body", cls.body.index(fn)))
            for kind, line, path in _blocks(fn, where):
                found.append(Site(module, cls.name, fn.name, line, kind, path))
    return found


TIMER = ast.parse("await workflow.sleep(1)").body[0]


def mutated_class(site: Site) -> type:
    """The site's workflow class compiled from its source with a timer at the site."""
    source_file = Path(importlib.import_module(site.module).__file__ or "")
    tree = ast.parse(source_file.read_text())
    node: ast.AST = tree
    *steps, (field, _) = site.path
    for name, index in steps:
        value = getattr(node, name)
        node = value[index] if index is not None else value
    block = getattr(node, field)
    block.insert(0, TIMER)
    ast.fix_missing_locations(tree)
    name = f"{site.module}_mutant_{uuid.uuid4().hex}"
    module = types.ModuleType(name)
    module.__file__ = str(source_file)
    sys.modules[name] = module
    try:
        exec(compile(tree, str(source_file), "exec"), module.__dict__)  # noqa: S102
    finally:
        del sys.modules[name]
    cls = getattr(module, site.cls)
    assert isinstance(cls, type)
    return cls


def histories() -> list[WorkflowHistory]:
    return [WorkflowHistory.from_json(f"replay-{p.stem}", p.read_text()) for p in HISTORIES]


async def first_failure(workflows: list[type], loaded: list[WorkflowHistory]) -> str | None:
    """The first history the workflows fail to replay (its workflow id), or None."""

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in loaded:
            yield history

    replayer = Replayer(workflows=workflows, workflow_runner=UnsandboxedWorkflowRunner())
    async with replayer.workflow_replay_iterator(each()) as results:
        async for result in results:
            failure = result.replay_failure
            if isinstance(failure, NondeterminismError):
                return result.history.workflow_id
            # Anything else (a mutant that does not compile, a decoding error) proves nothing.
            assert failure is None, f"{result.history.workflow_id}: {failure!r}"
    return None


SITES = sites()


async def test_the_real_workflows_replay_every_history() -> None:
    """The control: without a mutation, the same replayer fails nothing."""
    assert await first_failure(list(ALL_WORKFLOWS), histories()) is None


def test_every_exemption_names_a_real_branch() -> None:
    assert set(EXEMPT) <= {s.short for s in SITES}


async def test_a_timer_in_any_branch_breaks_some_replay() -> None:
    loaded = histories()
    # Branches of the same method replay the same histories: try the last one that broke first.
    by_name = {h.workflow_id: h for h in loaded}
    uncovered: list[str] = []
    covered: dict[str, str] = {}
    last: str | None = None
    for site in SITES:
        mutant = mutated_class(site)
        workflows = [mutant if w.__name__ == site.cls else w for w in ALL_WORKFLOWS]
        order = (
            loaded
            if last is None
            else [by_name[last], *(h for h in loaded if h is not by_name[last])]
        )
        failed = await first_failure(workflows, order)
        if failed is None:
            if site.short not in EXEMPT:
                uncovered.append(site.key)
        else:
            covered[site.key] = failed
            last = failed
    covered_exempt = sorted(s.short for s in SITES if s.key in covered and s.short in EXEMPT)
    report = "\n".join(f"  {k} <- {v}" for k, v in covered.items())
    assert not uncovered, (
        f"{len(uncovered)} of {len(SITES)} branches take a timer and every history still replays;"
        " record a history that walks them (tests/workflows/record_histories.py) or exempt them"
        " with a reason:\n  " + "\n  ".join(uncovered) + f"\ncovered:\n{report}"
    )
    assert not covered_exempt, f"exempted but covered now, drop the exemption: {covered_exempt}"


@pytest.mark.parametrize("module", MODULES)
def test_every_workflow_module_has_branches_to_mutate(module: str) -> None:
    assert any(s.module == module for s in SITES)
