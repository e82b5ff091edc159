"""journey archive queue: closed records whose journey the API has still to materialise

Revision ID: f6b1c3d5e7a9
Revises: e4f9a2b3c8d0
Create Date: 2026-11-29 15:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "f6b1c3d5e7a9"
down_revision = "e4f9a2b3c8d0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journey_pending",
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("workflow_id", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(["record_id"], ["record.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("record_id"),
    )
    op.create_index("ix_journey_pending_due_at", "journey_pending", ["due_at"], unique=False)
    # Records closed before this queue existed and never read since: archive them while their
    # histories are still within retention.
    op.execute(
        "insert into journey_pending (record_id, org_id, workflow_id, due_at)"
        " select r.id, r.org_id, coalesce(r.workflow_id, 'rec-' || r.id), now() from record r"
        " where r.status in ('completed', 'failed', 'cancelled') and r.started_at is not null"
        " and not exists (select 1 from journey_snapshot s where s.record_id = r.id)"
    )


def downgrade() -> None:
    op.drop_index("ix_journey_pending_due_at", table_name="journey_pending")
    op.drop_table("journey_pending")
