"""call intake: the analysis so far beside each transcript, schedules over unanalysed rows

Revision ID: d4f6a8c0e2b3
Revises: c3e5a7b9d1f2
Create Date: 2026-12-06 07:30:00.000000

`apply_tags` and `qa_score` keep their results (tags with evidence, the score breakdown and
the scorecard snapshot) in `call_transcript.analysis` until `summarize` writes the analysed
call; `stt_ms` is how long the speech-to-text took. A schedule with `only_unanalysed` takes
only the rows of its table that have no analysed call yet (the Call Analyzer's nightly run).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "d4f6a8c0e2b3"
down_revision = "c3e5a7b9d1f2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("call_transcript", sa.Column("stt_ms", sa.Integer(), nullable=True))
    op.add_column("call_transcript", sa.Column("analysis", postgresql.JSONB(), nullable=True))
    op.add_column(
        "spinner_schedule",
        sa.Column("only_unanalysed", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("spinner_schedule", "only_unanalysed")
    op.drop_column("call_transcript", "analysis")
    op.drop_column("call_transcript", "stt_ms")
