"""Monthly plan meters (jobs, records spun, call analyses): charged atomically, refused past the
organization's plan with PlanLimitReached, which the API answers with 403 PLAN_LIMIT."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.plans import load_plans
from infra.settings import get_settings
from models.plan import Meter


class PlanRefused(Exception):
    """The organization's plan does not allow this (a limit reached, or a plan not defined)."""


class PlanLimitReached(PlanRefused):
    """The organization's plan does not allow this much of a meter (this month, if monthly)."""

    def __init__(self, plan: str, meter: Meter, limit: int) -> None:
        self.plan, self.meter, self.limit = plan, meter, limit
        super().__init__(f"Your {plan} plan allows {limit} {meter_words(meter)} per month")


def meter_words(meter: Meter) -> str:
    return meter.value.replace("_", " ")


class PlanUnknown(PlanRefused):
    """The organization's plan is not defined on this server (built-in or in the plans file)."""

    def __init__(self, plan: str) -> None:
        super().__init__(
            f"Your organization's plan '{plan}' is not defined on this server; "
            "ask its operator to set another one"
        )


def limit_for(plan: str, meter: Meter) -> int:
    limits = load_plans(get_settings().plans_file).get(plan)
    if limits is None:
        raise PlanUnknown(plan)
    return limits[meter]


def current_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


async def org_plan(conn: AsyncConnection, org_id: uuid.UUID) -> str:
    plan = (
        await conn.execute(text("select plan from organization where id = :o"), {"o": org_id})
    ).scalar_one()
    return str(plan)


async def consume_monthly(
    conn: AsyncConnection, org_id: uuid.UUID, plan: str, meter: Meter, amount: int = 1
) -> int:
    """Adds `amount` to this month's meter in one statement, so concurrent charges cannot both
    pass the limit; the meter's new value. Raises PlanLimitReached (the caller rolls back)."""
    limit = limit_for(plan, meter)
    used = (
        await conn.execute(
            text(
                "insert into usage_counter (org_id, meter, month, used)"
                " values (:org, :meter, :month, :amount)"
                " on conflict (org_id, meter, month) do update"
                " set used = usage_counter.used + excluded.used"
                " where usage_counter.used + excluded.used <= :limit"
                " returning used"
            ),
            {
                "org": org_id,
                "meter": meter.value,
                "month": current_month(),
                "amount": amount,
                "limit": limit,
            },
        )
    ).scalar()
    # A first charge of the month is an insert, which the where clause does not guard.
    if used is None or amount > limit:
        raise PlanLimitReached(plan, meter, limit)
    return int(used)


async def monthly_usage(conn: AsyncConnection, org_id: uuid.UUID) -> dict[Meter, int]:
    rows = await conn.execute(
        text("select meter, used from usage_counter where org_id = :org and month = :month"),
        {"org": org_id, "month": current_month()},
    )
    return {Meter(m): int(u) for m, u in rows if m in Meter.__members__}
