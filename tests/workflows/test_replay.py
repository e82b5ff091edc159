"""Committed histories must replay on today's workflow code without non-determinism.

Histories of every workflow and path, recorded by `python -m tests.workflows.record_histories`;
tests/workflows/test_replay_mutations.py proves that every branch of the workflows is replayed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.registry import ALL_WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
SHAPES = {
    # JobWorkflow
    "job_continue_as_new",
    "job_continued_run",
    "job_waiting_records",
    "job_pause_sweep_resume",
    "job_cancelled",
    "job_redriven",
    # RecordWorkflow
    "record_plain",
    "record_cheap_failure",
    "record_waits",
    "record_wait_kinds",
    "record_send_outcomes",
    "record_function_ai",
    "record_callback",
    "record_callback_timeout",
    "record_callback_child",
    "record_retry_parent",
    "record_retry_child",
    "record_failed",
    "record_redriven",
    "record_cancelled_waiting",
    "record_cancelled_in_call",
    # ScheduledRunWorkflow
    "scheduled_run",
    "scheduled_run_skipped",
}
WHAT_TO_DO = """\
{name} no longer replays on today's workflow code: {failure}

A workflow change made the committed history non-deterministic. Before the first release (no
execution of the old code runs anywhere but our fixtures), re-record the histories:
    .venv/bin/python -m tests.workflows.record_histories
After the first release, keep old executions replaying instead: guard the change with
`workflow.patched("id")`, later `workflow.deprecate_patch("id")` once no execution runs the old
code, then remove it; or ship the change as a new Temporal Worker Deployment version (Worker
Versioning) so running executions stay on the old code. See README "Changing a workflow".
"""


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    result = await Replayer(workflows=ALL_WORKFLOWS).replay_workflow(
        history, raise_on_replay_failure=False
    )
    if result.replay_failure is not None:
        pytest.fail(WHAT_TO_DO.format(name=path.name, failure=result.replay_failure))


def test_every_workflow_shape_has_a_history() -> None:
    assert {p.stem for p in HISTORIES} == SHAPES
