"""Placeholder for the `send_message` activity; being written now (see RecordWorkflow)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from cxgear.vault import SecretStore
from workflows.types import StepResult, StepRun


class MessagingActivities:
    def __init__(self, engine: AsyncEngine, secrets: SecretStore, *, public_api_url: str) -> None:
        self.engine = engine
        self.secrets = secrets
        self.public_api_url = public_api_url.rstrip("/")

    @activity.defn
    async def send_message(self, run: StepRun) -> StepResult:
        raise ApplicationError("not available yet", non_retryable=True)
