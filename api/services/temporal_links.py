"""Links into the Temporal UI for a job and a record (the console's "open in Temporal UI").

The UI shows decoded payloads when its codec endpoint is this API's /codec (see README).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from infra.settings import Settings


def _namespace_url(settings: Settings) -> str:
    return f"{settings.temporal_ui_base}/namespaces/{quote(settings.temporal_namespace, safe='')}"


def job_workflows_url(settings: Settings, job_id: str) -> str:
    """The workflow list filtered to one job: its JobWorkflow and every record's workflow."""
    # Job ids are UUIDs; escaping quotes keeps the visibility query well-formed for any string.
    value = job_id.replace("\\", "\\\\").replace('"', '\\"')
    query = urlencode({"query": f'CxJobId = "{value}"'}, quote_via=quote)
    return f"{_namespace_url(settings)}/workflows?{query}"


def record_workflow_url(settings: Settings, record_id: int, workflow_id: str | None = None) -> str:
    """The record's workflow (its latest run); supporting records pass their own workflow id."""
    wf = workflow_id or f"rec-{record_id}"
    return f"{_namespace_url(settings)}/workflows/{quote(wf, safe='')}"
