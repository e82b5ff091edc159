"""data tables: data_table, data_row, ingest_idempotency

Revision ID: 92db124b27bc
Revises: bbaa6b499274
Create Date: 2026-11-29 05:43:33.145549
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "92db124b27bc"
down_revision = "bbaa6b499274"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_table",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("columns", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("metadata_fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("ingest_token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ingest_token_hash"),
        sa.UniqueConstraint("project_id", "name", name="uq_data_table_project_name"),
    )
    op.create_index(op.f("ix_data_table_org_id"), "data_table", ["org_id"], unique=False)
    op.create_table(
        "data_row",
        sa.Column("table_id", sa.Uuid(), nullable=False),
        sa.Column("row_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(["table_id"], ["data_table.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("table_id", "row_id"),
    )
    op.create_table(
        "ingest_idempotency",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("body_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id", "key"),
    )
    op.create_index(
        "ix_ingest_idempotency_created_at", "ingest_idempotency", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_ingest_idempotency_created_at", table_name="ingest_idempotency")
    op.drop_table("ingest_idempotency")
    op.drop_table("data_row")
    op.drop_index(op.f("ix_data_table_org_id"), table_name="data_table")
    op.drop_table("data_table")
