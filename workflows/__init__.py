"""Workflows, one per file; the worker's registry is `workflows.registry.ALL_WORKFLOWS`.

Nothing is imported here so activities can import `workflows.contracts` without a cycle.
"""
