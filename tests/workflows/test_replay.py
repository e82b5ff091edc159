"""Committed histories must replay on today's workflow code without non-determinism.

When a change to a workflow breaks one of these, guard it with `workflow.patched()` (or, for
records, a new `RecordInput.engine`); record today's histories with
`python -m tests.workflows.record_histories SUFFIX` for a deliberately new behaviour, and keep the
old files too: v1 predates batched cheap steps, v2 took today's paths through `patched()`, v3
through `engine=2`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.registry import ALL_WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    result = await Replayer(workflows=ALL_WORKFLOWS).replay_workflow(
        history, raise_on_replay_failure=True
    )
    assert result.replay_failure is None


def test_histories_are_committed() -> None:
    assert {p.stem for p in HISTORIES} >= {
        "job_workflow",
        "record_workflow",
        "record_workflow_callback",
        "job_workflow_v2",
        "record_workflow_v2",
        "record_workflow_callback_v2",
        "job_workflow_v3",
        "record_workflow_v3",
        "record_workflow_callback_v3",
    }
