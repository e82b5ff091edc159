"""supporting spinners: spinner_link, record lineage (parent/root/link/attempt), supporting jobs

Revision ID: e4f9a2b3c8d0
Revises: d3e8f1a2b7c9
Create Date: 2026-12-02 09:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "e4f9a2b3c8d0"
down_revision = "d3e8f1a2b7c9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spinner_link",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("parent_spinner_id", sa.Uuid(), nullable=False),
        sa.Column("child_spinner_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("condition", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("delay", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["parent_spinner_id"], ["spinner.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["child_spinner_id"], ["spinner.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_spinner_link_org_id"), "spinner_link", ["org_id"], unique=False)
    op.create_index(
        op.f("ix_spinner_link_parent_spinner_id"),
        "spinner_link",
        ["parent_spinner_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_spinner_link_child_spinner_id"), "spinner_link", ["child_spinner_id"], unique=False
    )

    op.add_column("job", sa.Column("parent_job_id", sa.Uuid(), nullable=True))
    op.add_column("job", sa.Column("link_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        "fk_job_parent_job_id", "job", "job", ["parent_job_id"], ["id"], ondelete="SET NULL"
    )
    op.create_foreign_key(
        "fk_job_link_id", "job", "spinner_link", ["link_id"], ["id"], ondelete="SET NULL"
    )
    # One supporting job per (parent job, link), created lazily by the first child.
    op.create_index("uq_job_parent_link", "job", ["parent_job_id", "link_id"], unique=True)

    op.add_column(
        "record",
        sa.Column("workflow_id", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    )
    op.add_column("record", sa.Column("parent_record_id", sa.BigInteger(), nullable=True))
    op.add_column("record", sa.Column("root_record_id", sa.BigInteger(), nullable=True))
    op.add_column("record", sa.Column("link_id", sa.Uuid(), nullable=True))
    op.add_column("record", sa.Column("link_attempt", sa.Integer(), nullable=True))
    op.create_foreign_key(
        "fk_record_parent_record_id",
        "record",
        "record",
        ["parent_record_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_foreign_key(
        "fk_record_root_record_id",
        "record",
        "record",
        ["root_record_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_foreign_key(
        "fk_record_link_id", "record", "spinner_link", ["link_id"], ["id"], ondelete="SET NULL"
    )
    op.create_index("ix_record_parent_record_id", "record", ["parent_record_id"], unique=False)
    # A repeated trigger finds the existing child instead of inserting a second one.
    op.create_index("uq_record_workflow_id", "record", ["workflow_id"], unique=True)
    op.create_index(
        "uq_record_root_link_attempt",
        "record",
        ["root_record_id", "link_id", "link_attempt"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_record_root_link_attempt", table_name="record")
    op.drop_index("uq_record_workflow_id", table_name="record")
    op.drop_index("ix_record_parent_record_id", table_name="record")
    op.drop_constraint("fk_record_link_id", "record", type_="foreignkey")
    op.drop_constraint("fk_record_root_record_id", "record", type_="foreignkey")
    op.drop_constraint("fk_record_parent_record_id", "record", type_="foreignkey")
    for column in ("link_attempt", "link_id", "root_record_id", "parent_record_id", "workflow_id"):
        op.drop_column("record", column)
    op.drop_index("uq_job_parent_link", table_name="job")
    op.drop_constraint("fk_job_link_id", "job", type_="foreignkey")
    op.drop_constraint("fk_job_parent_job_id", "job", type_="foreignkey")
    op.drop_column("job", "link_id")
    op.drop_column("job", "parent_job_id")
    op.drop_index(op.f("ix_spinner_link_child_spinner_id"), table_name="spinner_link")
    op.drop_index(op.f("ix_spinner_link_parent_spinner_id"), table_name="spinner_link")
    op.drop_index(op.f("ix_spinner_link_org_id"), table_name="spinner_link")
    op.drop_table("spinner_link")
