"""Placeholder for the `send_message` activity; being written now (see RecordWorkflow)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.types import StepResult, StepRun


class MessagingActivities:
    @activity.defn
    async def send_message(self, run: StepRun) -> StepResult:
        raise ApplicationError("not available yet", non_retryable=True)
