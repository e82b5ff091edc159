"""Committed histories must replay on today's workflow code without non-determinism.

When a change to a workflow breaks one of these, guard it with `workflow.patched()`; regenerate a
history only for a deliberately new behaviour, and keep the old file too.
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
    }
