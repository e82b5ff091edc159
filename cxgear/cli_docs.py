"""`cxgear docs spinner-language`: write the spinner language reference from the models.

The renderer lives beside the models; this composition root hands it what lives above them:
the function sandbox (to run the examples and for its limits) and the callback scheme.
"""

from __future__ import annotations

import base64
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
from api.services.callback_events import EVENT_ID_MAX
from cxgear.cli_output import fail
from infra import callback_signing
from infra.settings import Settings
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


# The worked example's inputs: fixed, so the generated file only changes with the scheme.
EXAMPLE_SECRET = "whsec_" + base64.b64encode(b"the docs' example callback secret").decode()
EXAMPLE_MSG_ID = "msg_2f1c9d7e4b3a"
EXAMPLE_TIMESTAMP = 1_767_225_600
EXAMPLE_BODY = '{"status": "qualified"}'


def callback_scheme() -> CallbackScheme:
    signing = load_example("callback_signing")
    return CallbackScheme(
        route="/api/v1/public/callbacks/{token}",
        rotate_route="/api/v1/callbacks/secret/rotate",
        status_route="/api/v1/callbacks/secret",
        id_header=callback_signing.ID_HEADER,
        timestamp_header=callback_signing.TIMESTAMP_HEADER,
        signature_header=callback_signing.SIGNATURE_HEADER,
        id_max_chars=EVENT_ID_MAX,
        window_s=callback_signing.WINDOW_S,
        default_overlap_s=int(
            Settings.model_fields["callback_secret_overlap"].default.total_seconds()
        ),
        python_source=(EXAMPLES / "callback_signing.py").read_text(),
        curl_source=(EXAMPLES / "send_callback.sh").read_text(),
        example_secret=EXAMPLE_SECRET,
        example_msg_id=EXAMPLE_MSG_ID,
        example_timestamp=EXAMPLE_TIMESTAMP,
        example_body=EXAMPLE_BODY,
        example_headers=signing.callback_headers(
            EXAMPLE_SECRET, EXAMPLE_MSG_ID, EXAMPLE_TIMESTAMP, EXAMPLE_BODY.encode()
        ),
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
