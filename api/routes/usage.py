"""The organization's plan meters: used, limit and remaining, and when the monthly ones reset."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter

from api.deps import Allow, Principal, SessionDep
from api.services.plan_limits import usage_summary
from models.plan import MONTHLY_METERS, UNLIMITED, Meter
from models.usage import MeterUsage, UsagePublic

router = APIRouter(prefix="/usage", tags=["usage"])
BillingRead = Annotated[Principal, Allow("billing.read")]


def next_month_start(now: datetime) -> datetime:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


@router.get("")
async def get_usage(principal: BillingRead, session: SessionDep) -> UsagePublic:
    summary = await usage_summary(session, principal.org)
    meters = [
        MeterUsage(
            meter=name,
            monthly=Meter(name) in MONTHLY_METERS,
            used=figures["used"],
            limit=figures["limit"],
            remaining=max(figures["limit"] - figures["used"], 0),
            unlimited=figures["limit"] >= UNLIMITED,
        )
        for name, figures in summary.items()
    ]
    return UsagePublic(
        plan=principal.org.plan,
        resets_at=next_month_start(datetime.now(UTC)),
        meters=sorted(meters, key=lambda m: (m.monthly, m.meter)),
    )
