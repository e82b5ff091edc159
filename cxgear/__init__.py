"""CXGear composition root: settings, CLI, embedded stack, worker bootstrap and clients."""

__version__ = "0.1.0"
