"""send ledger: one row per provider send, committed before the provider call

Revision ID: d3e8f1a2b7c9
Revises: c7d1a9e2b4f0
Create Date: 2026-12-01 09:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "d3e8f1a2b7c9"
down_revision = "c7d1a9e2b4f0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_ledger",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("step_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("to_address", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column(
            "provider_message_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True
        ),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", name="uq_send_ledger_key"),
    )
    op.create_index(op.f("ix_send_ledger_org_id"), "send_ledger", ["org_id"], unique=False)
    op.create_index(
        op.f("ix_send_ledger_provider_message_id"),
        "send_ledger",
        ["provider_message_id"],
        unique=False,
    )
    op.create_index(
        "ix_send_ledger_channel_to", "send_ledger", ["channel_id", "to_address", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_send_ledger_channel_to", table_name="send_ledger")
    op.drop_index(op.f("ix_send_ledger_provider_message_id"), table_name="send_ledger")
    op.drop_index(op.f("ix_send_ledger_org_id"), table_name="send_ledger")
    op.drop_table("send_ledger")
