"""record spinner version: each record keeps the version of the spinner its job runs

Revision ID: b8d4f0a2c6e1
Revises: a7c2e9d4b1f3
Create Date: 2026-12-02 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "b8d4f0a2c6e1"
down_revision = "a7c2e9d4b1f3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("record", sa.Column("spinner_version", sa.Integer(), nullable=True))
    op.execute(
        "update record r set spinner_version = j.spinner_version from job j where j.id = r.job_id"
    )


def downgrade() -> None:
    op.drop_column("record", "spinner_version")
