"""record callback tokens: public callback URLs name a random token, not the record id

Revision ID: b8d4f2a6c1e3
Revises: b8d4f0a2c6e1
Create Date: 2026-12-05 12:00:00.000000

Record ids are global and sequential: a public URL naming them tells anyone which records exist
and how many there are. Each record gets a random token (a version-4 UUID from PostgreSQL's
`gen_random_uuid()`, core since 13) for its callback URL. Callback events are looked up by
(organization, event id) too: a sender's `webhook-id` names one event of the organization, so a
signed request replayed at another record's URL is recognised.
"""

import sqlalchemy as sa
from alembic import op

revision = "b8d4f2a6c1e3"
down_revision = "b8d4f0a2c6e1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "record",
        sa.Column(
            "callback_token",
            sa.Uuid(),
            nullable=False,
            server_default=sa.text("gen_random_uuid()"),
        ),
    )
    op.create_unique_constraint("record_callback_token_key", "record", ["callback_token"])
    op.create_index("ix_callback_event_org_event", "callback_event", ["org_id", "event_id"])


def downgrade() -> None:
    op.drop_index("ix_callback_event_org_event", table_name="callback_event")
    op.drop_constraint("record_callback_token_key", "record", type_="unique")
    op.drop_column("record", "callback_token")
