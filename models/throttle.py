"""Throttling state shared by every API replica: fixed-window counters and sign-in failures.

Keys are keyed hashes (`infra.security.token_hash`) of "kind:value", so neither email addresses
nor client IPs are stored. Each row says when it may be purged (`expires_at`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel


class RateWindow(SQLModel, table=True):
    """Requests counted in the current window of one key (sign-up per IP, public route per key)."""

    __tablename__ = "rate_window"

    key: str = Field(primary_key=True, max_length=64)
    window_start: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)
    hits: int
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False, index=True)


class LoginFailure(SQLModel, table=True):
    """Failed sign-ins of one account or client IP; `lockouts` makes each lockout longer."""

    __tablename__ = "login_failure"

    key: str = Field(primary_key=True, max_length=64)
    failures: int
    window_start: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)
    lockouts: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False, index=True)
