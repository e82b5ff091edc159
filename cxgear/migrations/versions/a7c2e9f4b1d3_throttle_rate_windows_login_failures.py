"""throttle: fixed-window request counters and sign-in failures, shared by API replicas

Revision ID: a7c2e9f4b1d3
Revises: f6b1c3d5e7a9
Create Date: 2026-12-01 10:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "a7c2e9f4b1d3"
down_revision = "f6b1c3d5e7a9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_window",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_rate_window_expires_at", "rate_window", ["expires_at"], unique=False)
    op.create_table(
        "login_failure",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_login_failure_expires_at", "login_failure", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_login_failure_expires_at", table_name="login_failure")
    op.drop_table("login_failure")
    op.drop_index("ix_rate_window_expires_at", table_name="rate_window")
    op.drop_table("rate_window")
