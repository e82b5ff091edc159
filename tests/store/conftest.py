"""The store's job tests drive every job source end to end: the engine's module fixtures."""

from tests.workflows.conftest import crm, settings, worker

__all__ = ["crm", "settings", "worker"]
