"""The `cxgear` command line."""

from __future__ import annotations

import asyncio
import logging
import sys

import typer
from rich.console import Console

from cxgear import __version__
from cxgear.cli_admin import integrations_app, secrets_app
from cxgear.cli_callbacks import callbacks_app
from cxgear.cli_calls import calls_app
from cxgear.cli_docs import docs_app
from cxgear.cli_jobs import jobs_app, records_app
from cxgear.cli_keys import keys_app
from cxgear.cli_orgs import orgs_app
from cxgear.cli_output import CliGroup
from cxgear.cli_projects import projects_app
from cxgear.cli_schedules import schedules_app
from cxgear.cli_session import login, logout
from cxgear.cli_spinners import journey, spinners_app
from cxgear.cli_spinners import run as run_spinner
from cxgear.cli_tables import tables_app
from infra.log_privacy import quiet_http_loggers
from infra.settings import TASK_QUEUES, get_settings

app = typer.Typer(
    help="CXGear: automation over rows of data.",
    no_args_is_help=True,
    cls=CliGroup,
    pretty_exceptions_show_locals=False,
)
app.command("login")(login)
app.command("logout")(logout)
app.add_typer(projects_app, name="projects")
app.add_typer(spinners_app, name="spinners")
app.add_typer(tables_app, name="tables")
app.command("run")(run_spinner)
app.command("journey")(journey)
app.add_typer(secrets_app, name="secrets")
app.add_typer(integrations_app, name="integrations")
app.add_typer(jobs_app, name="jobs", no_args_is_help=True)
app.add_typer(records_app, name="records", no_args_is_help=True)
app.add_typer(schedules_app, name="schedules")
app.add_typer(keys_app, name="api-keys", no_args_is_help=True)
app.add_typer(callbacks_app, name="callbacks")
app.add_typer(calls_app, name="calls")
app.add_typer(orgs_app, name="orgs")
codec_app = typer.Typer(help="The payload codec's keys (in Vault).", no_args_is_help=True)
app.add_typer(codec_app, name="codec")
app.add_typer(docs_app, name="docs")
console = Console()
err = Console(stderr=True)


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet_http_loggers()


@app.command()
def version() -> None:
    """Print the CXGear version."""
    console.print(f"cxgear {__version__}")


@codec_app.command("rotate")
def codec_rotate() -> None:
    """Make a new key current for new payloads; older keys stay so old histories still decode."""
    from infra.codec import rotate_codec_key

    console.print(f"payload codec key is now {asyncio.run(rotate_codec_key(get_settings()))}")


@app.command()
def dev() -> None:
    """Start the embedded stack (PostgreSQL, Temporal + UI, OpenBao), migrate, then the API and a worker."""
    from cxgear.stack.dev import run_dev

    raise typer.Exit(run_dev(get_settings()))


@app.command()
def migrate() -> None:
    """Apply database migrations (idempotent)."""
    from cxgear.migrate import migrate as run

    run(get_settings().database_url)
    console.print("database is at the latest migration")


@app.command()
def api(
    host: str = typer.Option(None, help="Bind address (default from CXGEAR_API_HOST)"),
    port: int = typer.Option(None, help="Port (default from CXGEAR_API_PORT)"),
) -> None:
    """Run the HTTP API with uvicorn."""
    import gc

    import uvicorn

    from api.app import app as asgi_app

    settings = get_settings()
    # The imported modules live as long as the process: kept out of the collector's full passes,
    # which otherwise stop every request for as long as they walk them (~0.25 s under load).
    gc.freeze()
    uvicorn.run(
        asgi_app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        proxy_headers=True,
        log_level="info",
    )


@app.command()
def worker(
    queues: list[str] = typer.Argument(
        None, help=f"Task queues to poll (default all: {', '.join(TASK_QUEUES)})"
    ),
) -> None:
    """Run a Temporal worker for all task queues, or only the ones named."""
    from cxgear.worker import run_worker

    chosen = queues or list(TASK_QUEUES)
    unknown = sorted(set(chosen) - set(TASK_QUEUES))
    if unknown:
        err.print(
            f"unknown task queue(s): {', '.join(unknown)}; choose from {', '.join(TASK_QUEUES)}"
        )
        raise typer.Exit(2)
    _logging()
    try:
        asyncio.run(run_worker(get_settings(), chosen))
    except KeyboardInterrupt:
        sys.exit(0)
