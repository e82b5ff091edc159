"""examples/README.md, run as written: every ```bash command, in order, against `./cx dev`
started with the settings the README prefixes to it (the CRM stub's address allowed)."""

from __future__ import annotations

import re
import shlex
import socket
from pathlib import Path

import pytest

from tests.dev_stack import REPO_ROOT, running_dev
from tests.test_readme import STACK_AND_SCRIPT_SECONDS, commands_in, run_script

EXAMPLES_README = REPO_ROOT / "examples" / "README.md"
CRM_PORT = 18080
HOT_CONTACTS = 8  # contacts.csv rows whose score (campaign.yml's function) reaches 50


def _dev_command(command: str) -> dict[str, str]:
    """The settings a `VAR=value … ./cx dev` line gives the stack."""
    words = shlex.split(command)
    assert words[-2:] == ["./cx", "dev"], f"the first command must start the stack: {command!r}"
    settings = dict(word.split("=", 1) for word in words[:-2])
    assert all(name.startswith("CXGEAR_") for name in settings), settings
    return settings


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


class TestExamples:
    def test_the_stack_is_started_with_the_crm_allowed(self) -> None:
        settings = _dev_command(commands_in(EXAMPLES_README)[0])
        assert f"127.0.0.1:{CRM_PORT}" in settings["CXGEAR_HTTP_ALLOWED_HOSTS"].split(",")
        assert (
            f"http://127.0.0.1:{CRM_PORT}/leads"
            in (REPO_ROOT / "examples" / "campaign.yml").read_text()
        )

    @pytest.mark.timeout(STACK_AND_SCRIPT_SECONDS)
    def test_every_command_runs_against_cxgear_dev(self, tmp_path: Path) -> None:
        assert _port_is_free(CRM_PORT), f"the example's CRM stub needs port {CRM_PORT}"
        start, *rest = commands_in(EXAMPLES_README)
        with running_dev(["./cx", "dev"], tmp_path / "state", extra_env=_dev_command(start)) as dev:
            env = {"CXGEAR_API_URL": dev.api_url, "CXGEAR_PUBLIC_API_URL": dev.api_url}
            address = dev.api_url.removeprefix("http://")
            # The commands name files under examples/, from the repository's root.
            result = run_script(rest, REPO_ROOT, env, address)
        out = result.stdout
        assert result.returncode == 0, f"an example command failed:\n{out[-6000:]}"
        assert len([line for line in out.splitlines() if line.startswith("+ ")]) == len(rest)
        # Every hot lead reached the CRM (with the vault's token), was called back and tagged.
        finished = re.search(r"job completed: (\d+) completed, (\d+) failed", out)
        assert finished, out[-4000:]
        assert finished.groups() == ("20", "0"), out[-4000:]
        assert f"{HOT_CONTACTS} of {HOT_CONTACTS} records" in out
        assert out.count("crm: called back") == HOT_CONTACTS
        assert '"status": "qualified"' in out.replace("'", '"')
        assert "crm-demo-token" not in out.split("+ cxgear journey", 1)[1].split("+ curl", 1)[0]
        # The callback secret went from the CLI to the CRM's environment, and nowhere else.
        assert "callback secret version 1 (shown only now" in out
        assert "whsec_" not in out
