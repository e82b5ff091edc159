"""Plan meters: refuse work that would exceed the organization's plan with PLAN_LIMIT."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AppError
from models.api_key import ApiKey
from models.organization import Organization
from models.plan import MONTHLY_METERS, Meter
from models.project import Project
from models.user import User, UserStatus
from store import usage
from store.usage import PlanRefused

CAPACITY_QUERIES: dict[Meter, Any] = {
    Meter.projects: lambda org_id: (
        select(func.count()).select_from(Project).where(Project.org_id == org_id)
    ),
    Meter.users: lambda org_id: (
        select(func.count())
        .select_from(User)
        .where(User.org_id == org_id, User.status == UserStatus.active)
    ),
    Meter.api_keys: lambda org_id: (
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.org_id == org_id, col(ApiKey.revoked_at).is_(None))
    ),
}


def register_capacity_meter(meter: Meter, query: Any) -> None:
    """Later modules (data tables, spinners, channels) add their own capacity counts."""
    CAPACITY_QUERIES[meter] = query


def limit_for(org: Organization, meter: Meter) -> int:
    try:
        return usage.limit_for(org.plan, meter)
    except usage.PlanUnknown as exc:
        raise AppError(str(exc), "PLAN_UNKNOWN", 403) from None


def plan_limit_error(exc: PlanRefused) -> AppError:
    code = "PLAN_UNKNOWN" if isinstance(exc, usage.PlanUnknown) else "PLAN_LIMIT"
    return AppError(str(exc), code, 403)


async def ensure_capacity(session: AsyncSession, org: Organization, meter: Meter) -> None:
    limit = limit_for(org, meter)
    used = (await session.exec(CAPACITY_QUERIES[meter](org.id))).one()
    if used >= limit:
        raise AppError(
            f"Your {org.plan} plan allows {limit} {usage.meter_words(meter)}; "
            "upgrade the plan or remove some first",
            "PLAN_LIMIT",
            403,
        )


async def consume_monthly(
    session: AsyncSession, org: Organization, meter: Meter, amount: int = 1
) -> None:
    """Atomically add to a monthly meter, refusing if the month's allowance would be exceeded."""
    try:
        await usage.consume_monthly(await session.connection(), org.id, org.plan, meter, amount)
    except PlanRefused as exc:
        raise plan_limit_error(exc) from exc


async def usage_summary(session: AsyncSession, org: Organization) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for meter, query in CAPACITY_QUERIES.items():
        used = (await session.exec(query(org.id))).one()
        out[meter.value] = {"used": int(used), "limit": limit_for(org, meter)}
    monthly = await usage.monthly_usage(await session.connection(), org.id)
    for meter in sorted(MONTHLY_METERS):
        out[meter.value] = {"used": monthly.get(meter, 0), "limit": limit_for(org, meter)}
    return out
