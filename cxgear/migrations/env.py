"""Alembic environment: our SQLModel metadata, a sync psycopg connection, one advisory lock."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text
from sqlmodel import SQLModel

import models.tables  # noqa: F401  - registers every table on the metadata

MIGRATION_LOCK = 745_213_001


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Several API or worker replicas may start at once; only one migrates at a time.
        connection.execute(text(f"select pg_advisory_lock({MIGRATION_LOCK})"))
        try:
            context.configure(
                connection=connection,
                target_metadata=SQLModel.metadata,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.execute(text(f"select pg_advisory_unlock({MIGRATION_LOCK})"))
            connection.commit()


run()
