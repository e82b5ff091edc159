"""Spinner drafts, validation and publishing.

Which metadata fields a template may name depends on the table a run reads, and a spinner is
not bound to one table. So templates are checked against the table itself when one is known:
Run now, the public trigger and schedule creation answer with `warnings` for that table's fields.
When a spinner is saved or published no table is given: it is checked against the tables it has
already run on or is scheduled on, and against every table of the project only when there are
none.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AppError
from models.channel import Channel
from models.data_table import DataTable
from models.integration import Integration
from models.spinner import IssuePublic, Spinner, SpinnerVersion
from models.spinner_language.definition import definition_hash
from models.spinner_language.errors import ValidationIssue
from models.spinner_language.validation import parse_definition, validate_definition


def table_fields(table: DataTable) -> list[str]:
    """What a record of this table carries: its metadata fields, or all columns when none chosen."""
    return list(table.metadata_fields or table.columns or [])


KNOWN_TABLES = text(
    "select table_id from job where spinner_id = :s and table_id is not null"
    " union select table_id from spinner_schedule where spinner_id = :s"
)


async def save_time_fields(session: AsyncSession, spinner: Spinner) -> tuple[list[str], str]:
    """(fields, where): those of the tables the spinner runs on, else of the whole project."""
    known = [r[0] for r in await session.execute(KNOWN_TABLES, {"s": spinner.id})]
    stmt = select(DataTable).where(DataTable.project_id == spinner.project_id)
    if known:
        stmt = stmt.where(col(DataTable.id).in_(known))
    tables = (await session.exec(stmt.order_by(col(DataTable.name)))).all()
    fields = sorted({f for table in tables for f in table_fields(table)})
    if known and len(tables) == 1:
        return fields, f"table '{tables[0].name}'"
    return fields, "the tables this spinner runs on" if known else "the project"


def check(
    definition: dict[str, Any], fields: list[str], where: str = "the project"
) -> list[ValidationIssue]:
    parsed, issues = parse_definition(definition)
    if parsed is not None:
        issues = issues + validate_definition(parsed, fields, where)
    return issues


# The step fields that name an object of the organization, and the table that holds it.
REFERENCES = {"channel_id": "channel", "integration_id": "integration"}


async def _owner_of(session: AsyncSession, what: str, ref: uuid.UUID) -> uuid.UUID | None:
    if what == "channel":
        channel = await session.get(Channel, ref)
        return channel.org_id if channel is not None else None
    integration = await session.get(Integration, ref)
    return integration.org_id if integration is not None else None


async def reference_issues(
    session: AsyncSession, org_id: uuid.UUID, definition: dict[str, Any]
) -> list[ValidationIssue]:
    """Channel and integration ids a step names that are not the organization's own.

    Another organization's id is reported exactly like an id that does not exist.
    """
    parsed, _ = parse_definition(definition)
    if parsed is None:
        return []
    issues: list[ValidationIssue] = []
    for i, step in enumerate(parsed.steps):
        for attr, what in REFERENCES.items():
            value = getattr(step, attr, None)
            if not isinstance(value, str):
                continue
            try:
                ref = uuid.UUID(value)
            except ValueError:
                ref = None
            if ref is None or await _owner_of(session, what, ref) != org_id:
                issues.append(
                    ValidationIssue(
                        "error",
                        step.id,
                        f"steps[{i}].{attr}",
                        f"no {what} '{value}' in this organization",
                    )
                )
    return issues


async def check_saved(session: AsyncSession, spinner: Spinner) -> list[ValidationIssue]:
    """The draft's issues at save time (see the module docstring)."""
    if not spinner.draft:
        return []
    fields, where = await save_time_fields(session, spinner)
    return check(spinner.draft, fields, where) + await reference_issues(
        session, spinner.org_id, spinner.draft
    )


async def run_warnings(
    session: AsyncSession, spinner: Spinner, table: DataTable, version_id: uuid.UUID | None = None
) -> list[IssuePublic]:
    """Warnings of the definition a run of `table` uses (the given or latest published version,
    else the draft) against that table's own fields."""
    stmt = select(SpinnerVersion).where(SpinnerVersion.spinner_id == spinner.id)
    if version_id is not None:
        stmt = stmt.where(SpinnerVersion.id == version_id)
    version = (await session.exec(stmt.order_by(col(SpinnerVersion.version).desc()))).first()
    definition = version.definition if version is not None else spinner.draft
    if not definition or not table.columns:
        return []
    issues = check(definition, table_fields(table), f"table '{table.name}'")
    return as_public([i for i in issues if i.level == "warning"])


def as_public(issues: list[ValidationIssue]) -> list[IssuePublic]:
    return [
        IssuePublic(level=i.level, step_id=i.step_id, path=i.path, message=i.message)
        for i in issues
    ]


async def publish(
    session: AsyncSession, spinner: Spinner, user_id: uuid.UUID | None
) -> SpinnerVersion:
    if not spinner.draft:
        raise AppError("The draft has no steps to publish", "VALIDATION_ERROR", 422)
    issues = await check_saved(session, spinner)
    errors = [i for i in issues if i.level == "error"]
    if errors:
        raise AppError(
            f"The draft has {len(errors)} error(s): "
            + "; ".join(f"{e.path}: {e.message}" for e in errors[:5]),
            "VALIDATION_ERROR",
            422,
            [p.model_dump() for p in as_public(errors)],
        )
    digest = definition_hash(parse_definition(spinner.draft)[0])  # type: ignore[arg-type]
    latest = (
        await session.exec(
            select(SpinnerVersion)
            .where(SpinnerVersion.spinner_id == spinner.id)
            .order_by(col(SpinnerVersion.version).desc())
        )
    ).first()
    if latest is not None and latest.content_hash == digest:
        return latest
    version = SpinnerVersion(
        org_id=spinner.org_id,
        spinner_id=spinner.id,
        version=(latest.version if latest else 0) + 1,
        definition=spinner.draft,
        content_hash=digest,
        published_by=user_id,
    )
    spinner.latest_version = version.version
    session.add(version)
    session.add(spinner)
    await session.flush()
    return version


async def latest_version(session: AsyncSession, spinner: Spinner) -> SpinnerVersion:
    version = (
        await session.exec(
            select(SpinnerVersion)
            .where(SpinnerVersion.spinner_id == spinner.id)
            .order_by(col(SpinnerVersion.version).desc())
        )
    ).first()
    if version is None:
        raise AppError(
            f"Spinner '{spinner.name}' has no published version; publish it before running",
            "NOT_PUBLISHED",
            409,
        )
    return version
