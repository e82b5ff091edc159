"""Spinner drafts, validation and publishing."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AppError
from models.spinner import IssuePublic, Spinner, SpinnerVersion
from models.spinner_language.definition import definition_hash
from models.spinner_language.errors import ValidationIssue
from models.spinner_language.validation import parse_definition, validate_definition


async def project_fields(session: AsyncSession, project_id: uuid.UUID) -> list[str]:
    """Names templates may use: every table's metadata fields (or all columns when none chosen)."""
    from models.data_table import DataTable

    fields: set[str] = set()
    for table in (
        await session.exec(select(DataTable).where(DataTable.project_id == project_id))
    ).all():
        fields.update(table.metadata_fields or table.columns or [])
    return sorted(fields)


def check(definition: dict[str, Any], fields: list[str]) -> list[ValidationIssue]:
    parsed, issues = parse_definition(definition)
    if parsed is not None:
        issues = issues + validate_definition(parsed, fields)
    return issues


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
    issues = check(spinner.draft, await project_fields(session, spinner.project_id))
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
