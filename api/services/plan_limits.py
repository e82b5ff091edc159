"""Plan meters: refuse work that would exceed the organization's plan with PLAN_LIMIT."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AppError
from infra.plans import load_plans
from infra.settings import get_settings
from models.api_key import ApiKey
from models.organization import Organization
from models.plan import Meter
from models.project import Project
from models.usage import UsageCounter
from models.user import User, UserStatus

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
    limits = load_plans(get_settings().plans_file).get(org.plan)
    if limits is None:
        raise AppError(
            f"Your organization's plan '{org.plan}' is not defined on this server; "
            "ask its operator to set another one",
            "PLAN_UNKNOWN",
            403,
        )
    return limits[meter]


async def ensure_capacity(session: AsyncSession, org: Organization, meter: Meter) -> None:
    limit = limit_for(org, meter)
    used = (await session.exec(CAPACITY_QUERIES[meter](org.id))).one()
    if used >= limit:
        raise AppError(
            f"Your {org.plan} plan allows {limit} {meter.value.replace('_', ' ')}; "
            "upgrade the plan or remove some first",
            "PLAN_LIMIT",
            403,
        )


def current_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


async def consume_monthly(
    session: AsyncSession, org: Organization, meter: Meter, amount: int = 1
) -> None:
    """Atomically add to a monthly meter, refusing if the month's allowance would be exceeded."""
    limit = limit_for(org, meter)
    stmt = (
        insert(UsageCounter)
        .values(org_id=org.id, meter=meter.value, month=current_month(), used=amount)
        .on_conflict_do_update(
            index_elements=["org_id", "meter", "month"],
            set_={"used": UsageCounter.__table__.c.used + amount},  # type: ignore[attr-defined]
            where=UsageCounter.__table__.c.used + amount <= limit,  # type: ignore[attr-defined]
        )
        .returning(UsageCounter.__table__.c.used)  # type: ignore[attr-defined]
    )
    row = (await session.execute(stmt)).first()
    if row is None or amount > limit:
        raise AppError(
            f"Your {org.plan} plan allows {limit} {meter.value.replace('_', ' ')} per month",
            "PLAN_LIMIT",
            403,
        )


async def usage_summary(session: AsyncSession, org: Organization) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for meter, query in CAPACITY_QUERIES.items():
        used = (await session.exec(query(org.id))).one()
        out[meter.value] = {"used": int(used), "limit": limit_for(org, meter)}
    month = current_month()
    rows = await session.exec(
        select(UsageCounter).where(UsageCounter.org_id == org.id, UsageCounter.month == month)
    )
    monthly = {r.meter: r.used for r in rows}
    for meter in (Meter.jobs, Meter.records_spun, Meter.call_analyses):
        out[meter.value] = {"used": monthly.get(meter.value, 0), "limit": limit_for(org, meter)}
    return out
