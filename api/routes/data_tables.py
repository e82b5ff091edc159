"""Data tables: create and manage them, import/append CSV, show data, export, ingest tokens."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from api.deps import Allow, Principal, SessionDep, SettingsDep
from api.errors import AppError, not_found
from api.number_text import NumberTextRoute
from api.routes.projects import ReadableProject, WritableProject
from api.services.csv_import import ImportMode, load_csv
from api.services.data_tables import (
    checked_metadata_fields,
    export_csv,
    name_taken,
    name_taken_error,
    rows_page,
    table_in_use,
    table_public,
)
from api.services.ingest import insert_records
from api.services.plan_limits import ensure_capacity
from infra.db import libpq_url
from infra.security import new_webhook_token, token_hash
from models.base import utcnow
from models.data_table import (
    DataTable,
    DataTableCreate,
    DataTablePublic,
    DataTablesPublic,
    DataTableUpdate,
    ImportPublic,
    IngestBody,
    IngestTokenPublic,
    RowsAppended,
    RowsPublic,
)
from models.fields import Cursor
from models.plan import Meter

router = APIRouter(tags=["data tables"])
Read = Annotated[Principal, Allow("projects.read")]
Write = Annotated[Principal, Allow("projects.write")]
Delete = Annotated[Principal, Allow("data_tables.delete")]


async def table_for(table_id: uuid.UUID, principal: Principal, session: SessionDep) -> DataTable:
    table = await session.get(DataTable, table_id)
    if table is None or table.org_id != principal.org_id:
        raise not_found("Data table")
    return table


async def readable_table(table_id: uuid.UUID, principal: Read, session: SessionDep) -> DataTable:
    return await table_for(table_id, principal, session)


async def writable_table(table_id: uuid.UUID, principal: Write, session: SessionDep) -> DataTable:
    return await table_for(table_id, principal, session)


async def deletable_table(table_id: uuid.UUID, principal: Delete, session: SessionDep) -> DataTable:
    return await table_for(table_id, principal, session)


ReadableTable = Annotated[DataTable, Depends(readable_table)]
WritableTable = Annotated[DataTable, Depends(writable_table)]
DeletableTable = Annotated[DataTable, Depends(deletable_table)]


@router.get("/projects/{project_id}/data-tables")
async def list_tables(project: ReadableProject, session: SessionDep) -> DataTablesPublic:
    tables = (
        await session.exec(
            select(DataTable)
            .where(DataTable.project_id == project.id)
            .order_by(col(DataTable.created_at))
        )
    ).all()
    return DataTablesPublic(data=[table_public(t) for t in tables], count=len(tables))


@router.post("/projects/{project_id}/data-tables", status_code=201)
async def create_table(
    project: WritableProject, body: DataTableCreate, principal: Write, session: SessionDep
) -> DataTablePublic:
    await ensure_capacity(session, principal.org, Meter.data_tables)
    if await name_taken(session, project.id, body.name):
        raise name_taken_error(body.name)
    table = DataTable(org_id=principal.org_id, project_id=project.id, name=body.name)
    session.add(table)
    await _flush_named(session, body.name)
    return table_public(table)


@router.get("/data-tables/{table_id}")
async def get_table(table: ReadableTable) -> DataTablePublic:
    return table_public(table)


@router.patch("/data-tables/{table_id}")
async def update_table(
    table: WritableTable, body: DataTableUpdate, session: SessionDep
) -> DataTablePublic:
    if body.name is not None and body.name != table.name:
        if await name_taken(session, table.project_id, body.name, other_than=table.id):
            raise name_taken_error(body.name)
        table.name = body.name
    if body.metadata_fields is not None:
        table.metadata_fields = checked_metadata_fields(table, body.metadata_fields)
    table.updated_at = utcnow()
    session.add(table)
    await _flush_named(session, table.name)
    return table_public(table)


@router.delete("/data-tables/{table_id}", status_code=204)
async def delete_table(table: DeletableTable, session: SessionDep) -> None:
    if await table_in_use(session, table.id):
        raise AppError(
            f"Data table '{table.name}' is used by a running job; "
            "wait for the job to finish or cancel it, then delete the table",
            "TABLE_IN_USE",
            409,
        )
    await session.delete(table)


FormulaGuard = Annotated[
    bool,
    Query(
        alias="formulaGuard",
        description="Export: prefix ' to cells a spreadsheet would run as formulas (not to "
        "numbers or phone numbers). Import/append: remove that ' again, so an export imports "
        "back to the same values; false when the file was exported without the guard",
    ),
]


async def _load(
    request: Request,
    table: DataTable,
    settings: SettingsDep,
    session: SessionDep,
    mode: ImportMode,
    formula_guard: bool,
) -> ImportPublic:
    result = await load_csv(
        request,
        table=table,
        mode=mode,
        conninfo=libpq_url(settings.database_url),
        max_columns=settings.max_columns,
        formula_guard=formula_guard,
    )
    await session.refresh(table)
    return ImportPublic(
        table=table_public(table), inserted=result.inserted, delimiter=result.delimiter
    )


# The body is read as a stream, not declared as a parameter, so describe it for the API docs.
CSV_UPLOAD = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


@router.post("/data-tables/{table_id}/import", openapi_extra=CSV_UPLOAD)
async def import_csv(
    table: WritableTable,
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    formula_guard: FormulaGuard = True,
) -> ImportPublic:
    """Load a CSV into an empty table; its header fixes the columns.

    Send it as multipart/form-data (field `file`) or as a raw `text/csv` body; either way it is
    streamed, and nothing is written unless the whole file is valid.
    """
    return await _load(request, table, settings, session, ImportMode.import_, formula_guard)


@router.post("/data-tables/{table_id}/append", openapi_extra=CSV_UPLOAD)
async def append_csv(
    table: WritableTable,
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    formula_guard: FormulaGuard = True,
) -> ImportPublic:
    """Add the rows of a CSV whose header has the table's columns (in any order)."""
    return await _load(request, table, settings, session, ImportMode.append, formula_guard)


async def append_rows(table: WritableTable, body: IngestBody, session: SessionDep) -> RowsAppended:
    """Append 1–500 records with exactly the table's columns (a signed-in user's ingest); the
    answer lists the new rows' ids, so a run can be started over just those rows."""
    ids = await insert_records(session, table, body.records)
    return RowsAppended(inserted=len(ids), row_ids=ids)


# Numbers keep their JSON text, as with the public ingest (api.number_text).
router.add_api_route(
    "/data-tables/{table_id}/rows",
    append_rows,
    methods=["POST"],
    status_code=201,
    route_class_override=NumberTextRoute,
)


@router.get("/data-tables/{table_id}/rows")
async def list_rows(
    table: ReadableTable,
    session: SessionDep,
    after: Annotated[Cursor | None, Query(description="rowId of the last row seen")] = None,
    limit: Annotated[int, Query(ge=1, description="page size, capped at 500")] = 50,
) -> RowsPublic:
    return await rows_page(session, table, after=after, limit=limit)


@router.get("/data-tables/{table_id}/export")
async def export_table(
    table: ReadableTable, settings: SettingsDep, formula_guard: FormulaGuard = True
) -> StreamingResponse:
    if not table.columns:
        raise AppError("This data table has no columns yet; import a CSV first", "TABLE_EMPTY", 409)
    filename = re.sub(r"[^A-Za-z0-9._-]+", "_", table.name).strip("_") or "data-table"
    return StreamingResponse(
        export_csv(
            libpq_url(settings.database_url),
            table.id,
            list(table.columns),
            formula_guard=formula_guard,
        ),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )


@router.post("/data-tables/{table_id}/ingest-token", status_code=201)
async def rotate_ingest_token(
    table: WritableTable, session: SessionDep, settings: SettingsDep
) -> IngestTokenPublic:
    """A new webhook token, shown only in this answer; the previous one stops working at once."""
    token = new_webhook_token()
    table.ingest_token_hash = token_hash(settings.secret_key.get_secret_value(), token)
    table.updated_at = utcnow()
    session.add(table)
    await session.flush()
    base = settings.public_api_url.rstrip("/")
    return IngestTokenPublic(token=token, url=f"{base}/api/v1/public/data-tables/ingest/{token}")


@router.delete("/data-tables/{table_id}/ingest-token", status_code=204)
async def revoke_ingest_token(table: WritableTable, session: SessionDep) -> None:
    table.ingest_token_hash = None
    table.updated_at = utcnow()
    session.add(table)


async def _flush_named(session: SessionDep, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        # Two requests raced past name_taken(); the unique index decided.
        if "uq_data_table_project_name" in str(exc.orig):
            raise name_taken_error(name) from None
        raise
