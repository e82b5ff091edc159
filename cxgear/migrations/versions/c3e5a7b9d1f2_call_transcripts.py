"""call transcripts: one row per transcribed call record, the utterances as JSONB

Revision ID: c3e5a7b9d1f2
Revises: c9e3a5b7d2f4
Create Date: 2026-12-06 07:00:00.000000

The `transcribe` step stores the speaker-separated utterances here, keyed by the record, instead
of carrying them in the workflow history; later steps (`summarize`, tags) read them by record id.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "c3e5a7b9d1f2"
down_revision = "c9e3a5b7d2f4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_transcript",
        sa.Column(
            "record_id",
            sa.BigInteger(),
            sa.ForeignKey("record.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "org_id",
            sa.Uuid(),
            sa.ForeignKey("organization.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("utterances", postgresql.JSONB(), nullable=False),
        sa.Column("provider_request_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_call_transcript_org_id", "call_transcript", ["org_id"])


def downgrade() -> None:
    op.drop_index("ix_call_transcript_org_id", table_name="call_transcript")
    op.drop_table("call_transcript")
