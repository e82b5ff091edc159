"""The `api_call` step: templated HTTP request through the SSRF-guarded client."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.http_client import (
    ApiCaller,
    ApiRequest,
    BlockedAddressError,
    InvalidRequestError,
    ResponseTooLargeError,
    UpstreamHttpError,
)
from activities.steps import render
from workflows.types import StepResult, StepRun


class HttpActivities:
    def __init__(self, caller: ApiCaller) -> None:
        self.caller = caller

    @activity.defn
    async def api_call(self, run: StepRun) -> StepResult:
        step = run.step
        body = step.get("body")
        request = ApiRequest(
            method=step["method"],
            url=render(run, step["url"]),
            headers={k: render(run, v) for k, v in (step.get("headers") or {}).items()},
            body=render(run, body) if body is not None else None,
            timeout_s=float(step.get("timeout_s", 10)),
            output_paths=dict(step.get("outputs") or {}),
        )
        try:
            response = await self.caller.call(request)
        except BlockedAddressError as exc:
            raise ApplicationError(str(exc), type="BlockedAddress", non_retryable=True) from exc
        except InvalidRequestError as exc:
            raise ApplicationError(str(exc), type="InvalidRequest", non_retryable=True) from exc
        except ResponseTooLargeError as exc:
            raise ApplicationError(str(exc), type="ResponseTooLarge", non_retryable=True) from exc
        except UpstreamHttpError as exc:
            raise ApplicationError(
                str(exc),
                type=f"Http{exc.status}",
                non_retryable=not exc.retryable,
                next_retry_delay=_seconds(exc.retry_after),
            ) from exc
        return StepResult(
            run.step["id"],
            run.step["type"],
            outcome="api_called",
            outputs=response.outputs,
            messages=[
                f"{request.method} {request.url} → {response.status} in {response.elapsed_ms} ms"
            ],
            next=step.get("next"),
        )


def _seconds(value: float | None) -> timedelta | None:
    return timedelta(seconds=value) if value else None
