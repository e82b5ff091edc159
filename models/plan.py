"""Plans and their meters. Capacity meters count live objects; monthly meters reset on the 1st."""

from __future__ import annotations

from enum import StrEnum


class Plan(StrEnum):
    """The built-in plans; an operator's plans file may redefine them or add others."""

    unlimited = "unlimited"
    trial = "trial"
    pro = "pro"
    advanced = "advanced"
    enterprise = "enterprise"


class Meter(StrEnum):
    projects = "projects"
    main_spinners = "main_spinners"
    users = "users"
    data_tables = "data_tables"
    api_keys = "api_keys"
    channels = "channels"
    jobs = "jobs"
    records_spun = "records_spun"
    call_analyses = "call_analyses"


MONTHLY_METERS = frozenset({Meter.jobs, Meter.records_spun, Meter.call_analyses})

UNLIMITED = 10**12

PLAN_LIMITS: dict[Plan, dict[Meter, int]] = {
    # The default on a self-hosted install: the operator owns the machine, nothing is metered.
    Plan.unlimited: dict.fromkeys(Meter, UNLIMITED),
    Plan.trial: {
        Meter.projects: 3,
        Meter.main_spinners: 10,
        Meter.users: 5,
        Meter.data_tables: 20,
        Meter.api_keys: 5,
        Meter.channels: 3,
        Meter.jobs: 500,
        Meter.records_spun: 1_000_000,
        Meter.call_analyses: 500,
    },
    Plan.pro: {
        Meter.projects: 20,
        Meter.main_spinners: 100,
        Meter.users: 25,
        Meter.data_tables: 200,
        Meter.api_keys: 25,
        Meter.channels: 20,
        Meter.jobs: 10_000,
        Meter.records_spun: 5_000_000,
        Meter.call_analyses: 20_000,
    },
    Plan.advanced: {
        Meter.projects: 100,
        Meter.main_spinners: 500,
        Meter.users: 200,
        Meter.data_tables: 2_000,
        Meter.api_keys: 100,
        Meter.channels: 100,
        Meter.jobs: 100_000,
        Meter.records_spun: 50_000_000,
        Meter.call_analyses: 200_000,
    },
    Plan.enterprise: dict.fromkeys(Meter, UNLIMITED),
}

# Requests per key per `CXGEAR_PUBLIC_RATE_WINDOW` (default a minute) on the public routes: an
# ingest webhook token, an organization API key (ingest and trigger), a record's callback URL.
PUBLIC_REQUESTS_PER_WINDOW: dict[str, int] = {
    # Self-hosted: nothing is metered, but a runaway client is still slowed down.
    Plan.unlimited: 6_000,
    Plan.trial: 60,
    Plan.pro: 300,
    Plan.advanced: 1_200,
    Plan.enterprise: 6_000,
}
