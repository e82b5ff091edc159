"""record read indexes: every filter of the records pages scoped by organization first

Revision ID: a7c2e9d4b1f3
Revises: a7c2e9f4b1d3
Create Date: 2026-12-05 10:00:00.000000

Keyset pages read `org_id = :org and <job or project> [and status | disposition | search]
order by id limit n`; each shape has a B-tree ending in `id`, so a page is one index range and
stops after `n` rows. Dispositions and parents are mostly NULL: those indexes are partial.
Metadata search (`metadata::text ilike '%…%'`, at least 3 characters) uses a trigram GIN index
led by `org_id` (btree_gin), so a search never looks at another organization's records.
"""

from alembic import op

revision = "a7c2e9d4b1f3"
down_revision = "a7c2e9f4b1d3"
branch_labels = None
depends_on = None

BTREES = [
    ("ix_record_org_job_id", "(org_id, job_id, id)", None),
    ("ix_record_org_job_disposition_id", "(org_id, job_id, disposition, id)", "disposition"),
    ("ix_record_org_project_id", "(org_id, project_id, id)", None),
    ("ix_record_org_project_status_id", "(org_id, project_id, status, id)", None),
    (
        "ix_record_org_project_disposition_id",
        "(org_id, project_id, disposition, id)",
        "disposition",
    ),
    ("ix_record_org_parent_record_id", "(org_id, parent_record_id)", "parent_record_id"),
]


def upgrade() -> None:
    # Both are trusted extensions (PostgreSQL 13+): the database owner may create them.
    op.execute("create extension if not exists pg_trgm")
    op.execute("create extension if not exists btree_gin")
    for name, columns, not_null in BTREES:
        where = f" where {not_null} is not null" if not_null else ""
        op.execute(f"create index {name} on record {columns}{where}")
    op.execute(
        "create index ix_record_org_search on record"
        " using gin (org_id, (metadata::text) gin_trgm_ops)"
    )
    # A job lies in one project of one organization: without these statistics the planner
    # multiplies the three selectivities, and the estimated count of a large filtered view is
    # far too low.
    op.execute(
        "create statistics record_org_project_job (dependencies) on org_id, project_id, job_id"
        " from record"
    )
    # Superseded: org_id leads the indexes above; the parent foreign key's lookups (ON DELETE
    # SET NULL) only ever look for non-NULL parents.
    op.drop_index("ix_record_org_id", table_name="record")
    op.drop_index("ix_record_parent_record_id", table_name="record")
    op.execute(
        "create index ix_record_parent_record_id on record (parent_record_id)"
        " where parent_record_id is not null"
    )


def downgrade() -> None:
    op.execute("drop statistics record_org_project_job")
    op.drop_index("ix_record_parent_record_id", table_name="record")
    op.create_index("ix_record_parent_record_id", "record", ["parent_record_id"], unique=False)
    op.create_index("ix_record_org_id", "record", ["org_id"], unique=False)
    op.drop_index("ix_record_org_search", table_name="record")
    for name, _, _ in reversed(BTREES):
        op.drop_index(name, table_name="record")
