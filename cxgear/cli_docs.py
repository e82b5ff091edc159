"""`cxgear docs spinner-language`: write the spinner language reference from the models.

The renderer lives beside the models; this composition root hands it what lives above them:
the function sandbox (to run the examples and for its limits) and the callback scheme.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import typer

from activities.function_sandbox import (
    MAX_LOG_LINE_CHARS,
    MAX_LOG_LINES,
    MAX_OUTPUT_CHARS,
    FunctionCall,
    run_function,
)
from api.services import callbacks
from cxgear.cli_output import fail
from models.spinner_language.docs import (
    REGENERATE,
    CallbackScheme,
    FunctionLimits,
    FunctionRun,
    render_reference,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = REPO_ROOT / "docs" / "spinner-language.md"
EXAMPLES = REPO_ROOT / "examples"

docs_app = typer.Typer(help="Generated documentation.", no_args_is_help=True)


def load_example(name: str) -> ModuleType:
    """A module of examples/ (not a package: the examples are scripts users copy)."""
    spec = importlib.util.spec_from_file_location(
        f"cxgear_examples_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_js(
    code: str, payload: dict[str, Any], output: dict[str, Any], context: dict[str, Any]
) -> FunctionRun:
    result = run_function(FunctionCall(code=code, payload=payload, output=output, context=context))
    return FunctionRun(result.ok, result.outputs, result.logs, result.error)


def callback_scheme() -> CallbackScheme:
    signing = load_example("callback_signing")
    secret, record_id, timestamp = "cb-secret-for-the-docs", 42, 1_767_225_600
    body = '{"status": "qualified"}'
    return CallbackScheme(
        route="/api/v1/public/callbacks/{record_id}",
        secret_route="/api/v1/callback-secret",
        headers={
            "timestamp": callbacks.TIMESTAMP_HEADER,
            "signature": callbacks.SIGNATURE_HEADER,
            "event id": callbacks.EVENT_HEADER,
        },
        window_s=callbacks.WINDOW_S,
        python_source=(EXAMPLES / "callback_signing.py").read_text(),
        curl_source=(EXAMPLES / "send_callback.sh").read_text(),
        example_secret=secret,
        example_record_id=record_id,
        example_timestamp=timestamp,
        example_body=body,
        example_headers=signing.callback_headers(secret, record_id, body.encode(), timestamp),
    )


def spinner_language_reference() -> str:
    limits = FunctionLimits(MAX_LOG_LINES, MAX_LOG_LINE_CHARS, MAX_OUTPUT_CHARS)
    return render_reference(limits, _run_js, callback_scheme())


@docs_app.command("spinner-language")
def spinner_language(
    check: bool = typer.Option(
        False, "--check", help="Exit 1 if the committed file differs instead of writing it"
    ),
) -> None:
    """Write docs/spinner-language.md from the spinner language models."""
    text = spinner_language_reference()
    if check:
        if not REFERENCE.exists() or REFERENCE.read_text() != text:
            raise fail(f"{REFERENCE.relative_to(REPO_ROOT)} is out of date; run {REGENERATE}", 1)
        return
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(text)
    typer.echo(f"wrote {REFERENCE.relative_to(REPO_ROOT)}")
