"""vault audit, integrations, channels, do-not-contact list

Revision ID: c7d1a9e2b4f0
Revises: 880a18b55c4e
Create Date: 2026-11-29 09:10:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "c7d1a9e2b4f0"
down_revision = "880a18b55c4e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vault_audit",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_vault_audit_org_created", "vault_audit", ["org_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_vault_audit_org_name_created",
        "vault_audit",
        ["org_id", "name", "created_at"],
        unique=False,
    )
    op.create_table(
        "integration",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("credentials_ref", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("credential_fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "name", name="uq_integration_org_name"),
    )
    op.create_index(op.f("ix_integration_org_id"), "integration", ["org_id"], unique=False)
    op.create_table(
        "channel",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("sender", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("sender_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("sandbox", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["integration_id"], ["integration.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "name", name="uq_channel_org_name"),
    )
    op.create_index(op.f("ix_channel_integration_id"), "channel", ["integration_id"], unique=False)
    op.create_index(op.f("ix_channel_org_id"), "channel", ["org_id"], unique=False)
    op.create_table(
        "do_not_contact",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "address", name="uq_do_not_contact_org_address"),
    )


def downgrade() -> None:
    op.drop_table("do_not_contact")
    op.drop_index(op.f("ix_channel_org_id"), table_name="channel")
    op.drop_index(op.f("ix_channel_integration_id"), table_name="channel")
    op.drop_table("channel")
    op.drop_index(op.f("ix_integration_org_id"), table_name="integration")
    op.drop_table("integration")
    op.drop_index("ix_vault_audit_org_name_created", table_name="vault_audit")
    op.drop_index("ix_vault_audit_org_created", table_name="vault_audit")
    op.drop_table("vault_audit")
