"""Placeholder for the `ai_agent` activity; being written now (see RecordWorkflow)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from cxgear.vault import SecretStore
from workflows.types import StepResult, StepRun


class LlmActivities:
    def __init__(self, engine: AsyncEngine, secrets: SecretStore) -> None:
        self.engine = engine
        self.secrets = secrets

    @activity.defn
    async def ai_agent(self, run: StepRun) -> StepResult:
        raise ApplicationError("not available yet", non_retryable=True)
