"""CXGear composition root: CLI, worker bootstrap, embedded dev stack and migrations."""

from infra import __version__

__all__ = ["__version__"]
