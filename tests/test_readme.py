"""Every command the README shows is run here, in order, against `./cx dev` started as it says.

The README's ```bash blocks are the commands a newcomer copies; other fences (```text, plain ```)
are synopses and output. `./cx dev` is the command this test starts (on free ports and a fresh
state dir, through environment variables the README documents); `./cx test` is the command
`.ci/run` runs, so running it here again would only recurse.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.dev_stack import REPO_ROOT, running_dev

README = REPO_ROOT / "README.md"
FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```", re.M | re.S)
# The README's examples talk to the default API address; the test's stack listens elsewhere.
DEFAULT_API = re.compile(r"\b(?:localhost|127\.0\.0\.1):8000\b")
STARTED_BY_THIS_TEST = "./cx dev"
RUN_BY_CI = "./cx test"
# curl answers 4xx/5xx with exit code 0; a README command that gets an error must fail here.
PRELUDE = """set -euo pipefail
curl() { command curl --silent --show-error --fail-with-body "$@"; }
"""


def commands_in(path: Path) -> list[str]:
    """The commands a Markdown file shows in ```bash blocks, comments after them dropped."""
    return [_without_comment(c) for c in readme_commands(path.read_text())]


def readme_commands(text: str) -> list[str]:
    """The commands of every ```bash block, continuation lines joined, comments dropped."""
    commands: list[str] = []
    for fence in FENCE.finditer(text):
        if fence.group("lang") not in ("bash", "sh", "shell"):
            continue
        pending = ""
        for raw in fence.group("body").splitlines():
            line = raw.rstrip()
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            commands.append(pending + line)
            pending = ""
        assert not pending, f"a README command ends in a line continuation: {pending!r}"
    return commands


def _without_comment(command: str) -> str:
    return re.sub(r"\s+#.*$", "", command).strip()


# The script may take this long; the test (stack start and stop included) gets more than the
# suite's default per-test timeout, so a slow shared machine fails with the script's output.
SCRIPT_SECONDS = 600
STACK_AND_SCRIPT_SECONDS = SCRIPT_SECONDS + 300


class TestReadmeCommands:
    def test_the_first_block_is_the_two_commands(self) -> None:
        commands = commands_in(README)
        assert commands[:2] == [STARTED_BY_THIS_TEST, RUN_BY_CI]
        assert RUN_BY_CI in (REPO_ROOT / ".ci" / "run").read_text()

    def test_a_failing_command_fails_the_run(self, tmp_path: Path) -> None:
        # The harness's own positive control: an HTTP error from curl is not swallowed.
        result = run_script(["curl http://127.0.0.1:9/unreachable"], tmp_path, {}, "")
        assert result.returncode != 0

    @pytest.mark.timeout(STACK_AND_SCRIPT_SECONDS)
    def test_every_command_runs_against_cxgear_dev(self, tmp_path: Path) -> None:
        commands = commands_in(README)
        rest = [c for c in commands if c not in (STARTED_BY_THIS_TEST, RUN_BY_CI)]
        assert rest, "the README shows no command beyond the two"
        with running_dev(["./cx", "dev"], tmp_path / "state") as dev:
            env = {
                "CXGEAR_API_URL": dev.api_url,
                "CXGEAR_PUBLIC_API_URL": dev.api_url,
            }
            result = run_script(rest, tmp_path / "work", env, dev.api_url.removeprefix("http://"))
        assert result.returncode == 0, (
            f"a README command failed (exit {result.returncode}):\n{result.stdout[-4000:]}"
        )
        echoed = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
        assert len(echoed) == len(rest), result.stdout


def run_script(
    commands: list[str], workdir: Path, extra_env: dict[str, str], api_address: str
) -> subprocess.CompletedProcess[str]:
    """Runs the commands as one bash script in `workdir`, echoing each; the user's config
    directory is a fresh one beside `workdir`, and whatever the commands left running in the
    background (a stub server) is stopped afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [DEFAULT_API.sub(api_address, c) if api_address else c for c in commands]
    # Each command is echoed before it runs, so a failure names the command that failed.
    script = PRELUDE + "".join(f"echo {_quote('+ ' + c)}\n{c}\necho\n" for c in lines)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXGEAR_")}
    env["PATH"] = f"{REPO_ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # `cxgear login` keeps its session in the config directory: never the real user's.
    env["XDG_CONFIG_HOME"] = str(workdir.parent / f"{workdir.name}-config")
    env.update(extra_env)
    # A file, not a pipe: a background job keeps its copy of the output open after the script.
    log = workdir.parent / f"{workdir.name}-output.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=SCRIPT_SECONDS)
        finally:
            # The script's own process group: background jobs it started and did not stop.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, log.read_text(), "")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("```bash\n./cx dev  # start\n```\n", ["./cx dev  # start"]),
        ("```bash\ncurl a \\\n  -d b\n# note\n```\n", ["curl a    -d b"]),
        ("```\ncxgear tables list\n```\n```text\nout\n```\n", []),
    ],
)
def test_commands_are_read_from_bash_fences_only(block: str, expected: list[str]) -> None:
    assert readme_commands(block) == expected
