"""Placeholder for the `send_email` activity; being written now (see RecordWorkflow)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.types import StepResult, StepRun


class EmailActivities:
    @activity.defn
    async def send_email(self, run: StepRun) -> StepResult:
        raise ApplicationError("not available yet", non_retryable=True)
