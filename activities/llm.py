"""Placeholder for the `ai_agent` activity; being written now (see RecordWorkflow)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.types import StepResult, StepRun


class LlmActivities:
    @activity.defn
    async def ai_agent(self, run: StepRun) -> StepResult:
        raise ApplicationError("not available yet", non_retryable=True)
