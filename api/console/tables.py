"""Data tables: list, create, CSV import/append with upload progress, rows, metadata fields."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from api.console.api_client import ApiError, ConsoleApi
from api.console.pages import CsrfChecked, MeDep, redirect, render
from api.console.projects import project_of
from models.fields import Cursor

router = APIRouter()
PAGE = 50


@router.get("/projects/{project_id}/tables")
async def tables_page(request: Request, me: MeDep, project_id: uuid.UUID) -> Response:
    project = await project_of(request, project_id)
    tables = (await ConsoleApi(request).get(f"/projects/{project_id}/data-tables"))["data"]
    return render(request, "tables.html", {"me": me, "project": project, "tables": tables})


@router.post("/projects/{project_id}/tables", dependencies=[CsrfChecked])
async def create_table(
    request: Request,
    me: MeDep,
    project_id: uuid.UUID,
    name: Annotated[str, Form(max_length=200)],
) -> Response:
    api = ConsoleApi(request)
    try:
        table = await api.post(f"/projects/{project_id}/data-tables", {"name": name})
    except ApiError as err:
        project = await project_of(request, project_id)
        tables = (await api.get(f"/projects/{project_id}/data-tables"))["data"]
        context = {"me": me, "project": project, "tables": tables, "error": err.message}
        return render(request, "tables.html", context, status=err.status)
    return redirect(request, f"/tables/{table['id']}")


async def _table_context(
    request: Request, me: Any, table_id: uuid.UUID, after: int | None
) -> dict[str, Any]:
    api = ConsoleApi(request)
    table = await api.get(f"/data-tables/{table_id}")
    project = await project_of(request, table["projectId"])
    rows = await api.get(f"/data-tables/{table_id}/rows", after=after, limit=PAGE)
    return {"me": me, "project": project, "table": table, "rows": rows, "after": after}


@router.get("/tables/{table_id}")
async def table_page(
    request: Request,
    me: MeDep,
    table_id: uuid.UUID,
    after: Annotated[Cursor | None, Query()] = None,
) -> Response:
    return render(request, "table.html", await _table_context(request, me, table_id, after))


async def _upload(request: Request, me: Any, table_id: uuid.UUID, mode: str) -> Response:
    api = ConsoleApi(request)
    try:
        result = await api.call(
            "POST",
            f"/data-tables/{table_id}/{mode}",
            content=request.stream(),
            headers={"content-type": request.headers.get("content-type", "text/csv")},
        )
    except ApiError as err:
        return render(
            request, "upload_result.html", {"error": err.message, "code": err.code}, status=422
        )
    return render(
        request, "upload_result.html", {"result": result, "table_id": table_id}, status=200
    )


@router.post("/tables/{table_id}/import", dependencies=[CsrfChecked])
async def import_csv(request: Request, me: MeDep, table_id: uuid.UUID) -> Response:
    return await _upload(request, me, table_id, "import")


@router.post("/tables/{table_id}/append", dependencies=[CsrfChecked])
async def append_csv(request: Request, me: MeDep, table_id: uuid.UUID) -> Response:
    return await _upload(request, me, table_id, "append")


@router.post("/tables/{table_id}/metadata", dependencies=[CsrfChecked])
async def set_metadata(
    request: Request,
    me: MeDep,
    table_id: uuid.UUID,
    fields: Annotated[list[str] | None, Form(max_length=1000)] = None,
) -> Response:
    api = ConsoleApi(request)
    try:
        await api.patch(f"/data-tables/{table_id}", {"metadataFields": fields or []})
    except ApiError as err:
        context = await _table_context(request, me, table_id, None)
        context["metadata_error"] = err.message
        return render(request, "table.html", context, status=err.status)
    return redirect(request, f"/tables/{table_id}?saved=metadata")


@router.post("/tables/{table_id}/ingest-token", dependencies=[CsrfChecked])
async def rotate_ingest_token(request: Request, me: MeDep, table_id: uuid.UUID) -> Response:
    """A new webhook token; the API shows it in this one answer and the old one stops working."""
    ingest = await ConsoleApi(request).post(f"/data-tables/{table_id}/ingest-token")
    context = await _table_context(request, me, table_id, None)
    context["ingest"] = ingest
    return render(request, "table.html", context, status=201)


@router.post("/tables/{table_id}/ingest-token/revoke", dependencies=[CsrfChecked])
async def revoke_ingest_token(request: Request, me: MeDep, table_id: uuid.UUID) -> Response:
    await ConsoleApi(request).delete(f"/data-tables/{table_id}/ingest-token")
    return redirect(request, f"/tables/{table_id}?saved=ingest")
