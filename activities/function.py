"""The `function` step: a small JavaScript function per record in the sandbox."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.function_sandbox import FunctionCall, run_function_async
from activities.plans import PlanCache, StepRun
from workflows.contracts import StepInput, StepResult


class FunctionActivities:
    def __init__(self, plans: PlanCache) -> None:
        self.plans = plans

    @activity.defn
    async def run_function(self, inp: StepInput) -> StepResult:
        return await self.run(await self.plans.step_run(inp))

    async def run(self, run: StepRun) -> StepResult:
        step = run.step
        result = await run_function_async(
            FunctionCall(
                code=step["code"],
                payload=run.metadata,
                output=run.outputs,
                context=run.context,
                timeout_ms=int(step.get("timeout_ms", 1000)),
                memory_mb=int(step.get("memory_mb", 32)),
            )
        )
        if not result.ok:
            # The code is the user's: running it again gives the same failure. Its message may
            # quote row data ("cannot reach +1415…"), so it goes only into the failure, which the
            # codec encrypts; BENIGN keeps the SDK from logging it (with its traceback) at WARNING.
            activity.logger.warning("function step %r failed in its own code", step["id"])
            raise ApplicationError(
                f"function failed: {result.error}",
                {"logs": result.logs},
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            )
        return StepResult(
            run.step["id"],
            run.step["type"],
            outcome="function_ran",
            outputs=result.outputs,
            messages=result.logs,
            next=step.get("next"),
        )
