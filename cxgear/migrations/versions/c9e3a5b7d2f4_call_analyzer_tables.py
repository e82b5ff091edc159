"""call analyzer: project setup, tags, versioned scorecards, analysed calls and overrides

Revision ID: c9e3a5b7d2f4
Revises: b8d4f2a6c1e3
Create Date: 2026-12-06 07:00:00.000000

Analytics read `analysed_call` by (org, project, day) or (org, day) over 7/30/90 days; the two
covering indexes hold what the roll-ups need (final score/percent/band, agent) so they are
index-only scans. Tag filters and top tags read the `hit_tags` array through a GIN index.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "c9e3a5b7d2f4"
down_revision = "b8d4f2a6c1e3"
branch_labels = None
depends_on = None

ANALYTICS_COLUMNS = ["final_score", "final_percent", "final_band", "agent", "hit_tags"]


def _str(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "call_setup",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("settings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id"),
    )
    op.create_index("ix_call_setup_org_id", "call_setup", ["org_id"])

    op.create_table(
        "call_tag",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", _str(64), nullable=False),
        sa.Column("kind", _str(16), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name", name="uq_call_tag_project_name"),
    )
    op.create_index("ix_call_tag_org_id", "call_tag", ["org_id"])
    op.create_index("ix_call_tag_project_id", "call_tag", ["project_id"])

    op.create_table(
        "scorecard",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", _str(200), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_scorecard_org_id", "scorecard", ["org_id"])
    op.create_index("ix_scorecard_project_id", "scorecard", ["project_id"])

    op.create_table(
        "scorecard_version",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scorecard_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(["scorecard_id"], ["scorecard.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["app_user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scorecard_id", "version", name="uq_scorecard_version_number"),
    )

    op.create_table(
        "analysed_call",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("call_id", _str(200), nullable=True),
        sa.Column("agent", _str(200), nullable=True),
        sa.Column("direction", _str(32), nullable=True),
        sa.Column("started_at", _ts(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("occurred_at", _ts(), nullable=False),
        sa.Column("transcript", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("tags", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("hit_tags", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("max_score", sa.Integer(), nullable=True),
        sa.Column("percent", sa.Float(), nullable=True),
        sa.Column("band", _str(8), nullable=True),
        sa.Column("final_score", sa.Integer(), nullable=True),
        sa.Column("final_percent", sa.Float(), nullable=True),
        sa.Column("final_band", _str(8), nullable=True),
        sa.Column("score_detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("summary", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("scorecard_version_id", sa.Uuid(), nullable=True),
        sa.Column("scorecard_snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("stt_ms", sa.Integer(), nullable=True),
        sa.Column("llm_ms", sa.Integer(), nullable=True),
        sa.Column("analysed_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["scorecard_version_id"], ["scorecard_version.id"], ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_id"),
    )
    op.create_index("ix_analysed_call_project_id", "analysed_call", ["org_id", "project_id", "id"])
    op.create_index(
        "ix_analysed_call_project_day",
        "analysed_call",
        ["org_id", "project_id", "occurred_at"],
        postgresql_include=ANALYTICS_COLUMNS,
    )
    op.create_index(
        "ix_analysed_call_org_day",
        "analysed_call",
        ["org_id", "occurred_at"],
        postgresql_include=ANALYTICS_COLUMNS,
    )
    op.create_index(
        "ix_analysed_call_hit_tags", "analysed_call", ["hit_tags"], postgresql_using="gin"
    )

    op.create_table(
        "question_override",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("analysed_call_id", sa.BigInteger(), nullable=False),
        sa.Column("question_id", _str(64), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("reason", _str(2000), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["analysed_call_id"], ["analysed_call.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_question_override_analysed_call_id", "question_override", ["analysed_call_id"]
    )


def downgrade() -> None:
    op.drop_table("question_override")
    op.drop_table("analysed_call")
    op.drop_table("scorecard_version")
    op.drop_table("scorecard")
    op.drop_table("call_tag")
    op.drop_table("call_setup")
