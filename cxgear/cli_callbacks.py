"""`cxgear callbacks …`: the organization's secret for signing record callbacks.

`rotate-secret` prints only the secret on stdout, so a script can hand it straight to the sender
(`export CALLBACK_SECRET="$(cxgear callbacks rotate-secret)"`); what it means goes to stderr.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from cxgear.cli_client import api_client, checked
from cxgear.cli_output import print_json
from cxgear.cli_tables import TOKEN

callbacks_app = typer.Typer(
    help="Record callbacks: the organization's signing secret (shown once, when rotated).",
    no_args_is_help=True,
)
out = Console()
note = Console(stderr=True, soft_wrap=True, highlight=False)
JSON = typer.Option(False, "--json", help="Print the API's JSON")


@callbacks_app.command("secret")
def secret_status(as_json: bool = JSON, token: str | None = TOKEN) -> None:
    """Whether the organization has a callback secret, since when, and until when the previous
    one still verifies; never the secret itself."""
    with api_client(token) as http:
        status = checked(http.get("/api/v1/callbacks/secret"))
    if as_json:
        print_json(status)
        return
    if not status["exists"]:
        out.print("no callback secret yet; create one with `cxgear callbacks rotate-secret`")
        return
    out.print(f"callback secret version {status['version']}, rotated at {status['rotatedAt']}")
    if status.get("previousValidUntil"):
        out.print(f"the previous secret verifies until {status['previousValidUntil']}")


@callbacks_app.command("rotate-secret")
def rotate_secret(
    immediate: bool = typer.Option(
        False, "--immediate", help="The previous secret stops verifying now (after a leak)"
    ),
    token: str | None = TOKEN,
) -> None:
    """Create the organization's callback secret, or replace it; prints it, the only time it is
    shown. The previous one keeps verifying for the server's overlap unless --immediate."""
    with api_client(token) as http:
        made = checked(http.post("/api/v1/callbacks/secret/rotate", json={"immediate": immediate}))
    sys.stdout.write(made["secret"] + "\n")
    sys.stdout.flush()
    until = made.get("previousValidUntil")
    previous = f"; the previous one verifies until {until}" if until else ""
    note.print(
        f"callback secret version {made['version']} (shown only now, store it with the sender)"
        + previous,
        markup=False,
    )
