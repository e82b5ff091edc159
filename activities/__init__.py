"""Step implementations grouped by the system they touch; `build_activities` is the one registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from activities.calls import AnalysisActivities, CallActivities
from activities.email import EmailActivities
from activities.engine_db import EngineDbActivities
from activities.function import FunctionActivities
from activities.http import HttpActivities
from activities.http_client import ApiCaller
from activities.job_reports import LINGER_S, JobReporter
from activities.llm import LlmActivities
from activities.messaging import DEFAULT_LIST_LAG, MessagingActivities
from activities.plans import PlanCache
from activities.steps import StepActivities
from activities.supporting import SupportingActivities
from infra.providers import ProviderGuard
from infra.vault import SecretStore


@dataclass
class ActivityDeps:
    engine: AsyncEngine
    public_api_url: str
    api_caller: ApiCaller
    # Secrets are read inside activities, never passed through Temporal.
    secrets: SecretStore
    # Vets integrations' base URLs (CXGEAR_PROVIDER_ALLOWED_HOSTS) before a provider is called.
    provider_guard: ProviderGuard
    # Only for records reporting to their job (JobReporter); activities never start workflows.
    temporal: Client | None = None
    # How long reports to a job are gathered before one signal carries them.
    report_linger_s: float = LINGER_S
    # CXGEAR_SEND_LIST_LAG: how long before a provider's message list shows an accepted send.
    send_list_lag: timedelta = DEFAULT_LIST_LAG


def build_activities(deps: ActivityDeps) -> dict[str, list[Callable[..., Any]]]:
    """Activities per task-queue name (without the deployment prefix)."""
    reporter = (
        JobReporter(deps.temporal, linger_s=deps.report_linger_s)
        if deps.temporal is not None
        else None
    )
    # One plan cache per worker process, shared by every activity that runs a step.
    plans = PlanCache(deps.engine, public_api_url=deps.public_api_url)
    db = EngineDbActivities(deps.engine, plans=plans, reporter=reporter)
    steps = StepActivities(plans)
    supporting = SupportingActivities(deps.engine)
    function = FunctionActivities(plans)
    http = HttpActivities(deps.api_caller, deps.engine, deps.secrets, plans=plans)
    guard = deps.provider_guard
    llm = LlmActivities(deps.engine, deps.secrets, plans=plans, provider_guard=guard)
    calls = CallActivities(
        deps.engine,
        deps.secrets,
        plans=plans,
        provider_guard=guard,
        # Recording URLs obey the api_call address rules (CXGEAR_HTTP_ALLOWED_HOSTS).
        http_guard=deps.api_caller.guard,
        llm=llm,
    )
    analysis = AnalysisActivities(deps.engine, plans=plans, llm=llm)
    messaging = MessagingActivities(
        deps.engine,
        deps.secrets,
        public_api_url=deps.public_api_url,
        plans=plans,
        provider_guard=guard,
        list_lag=deps.send_list_lag,
    )
    email = EmailActivities(
        deps.engine,
        deps.secrets,
        public_api_url=deps.public_api_url,
        plans=plans,
        provider_guard=guard,
        list_lag=deps.send_list_lag,
    )
    return {
        "main": [
            db.start_record,
            db.complete_record,
            db.set_record_phase,
            db.sweep_records,
            db.next_records,
            db.prepare_job,
            db.set_job_status,
            db.cancel_pending,
            db.finish_job,
            db.create_scheduled_job,
            steps.run_cheap,
            steps.wait_plan,
            steps.settle_send,
            steps.settle_wait,
            function.run_function,
            supporting.prepare_supporting,
            analysis.qa_score,
        ],
        "http": [http.api_call],
        "llm": [llm.ai_agent, calls.summarize, analysis.apply_tags],
        "stt": [calls.transcribe],
        "messaging": [messaging.send_message],
        "email": [email.send_email],
    }
