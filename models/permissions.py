"""The fixed permission keys and the system roles built from them."""

from __future__ import annotations

ALL = "*"

PERMISSIONS: tuple[str, ...] = (
    "projects.read",
    "projects.write",
    "spinners.read",
    "spinners.write",
    "spinners.run",
    "integrations.read",
    "integrations.write",
    "vault.read",
    "vault.write",
    "dialler.access",
    "dialler.agent",
    "conversations.agent",
    "conversations.supervise",
    "analytics.read",
    "pca.setup",
    "pca.tags",
    "pca.qa",
    "users.manage",
    "roles.manage",
    "billing.read",
    "api_keys.manage",
    "data_tables.delete",
)

SYSTEM_ROLES: dict[str, list[str]] = {
    "Admin": [ALL],
    "Supervisor": [
        "projects.read",
        "projects.write",
        "spinners.read",
        "spinners.run",
        "integrations.read",
        "dialler.access",
        "conversations.supervise",
        "analytics.read",
        "pca.tags",
        "pca.qa",
    ],
    "Agent": ["projects.read", "dialler.access", "dialler.agent", "conversations.agent"],
}


def grants(held: list[str], wanted: str) -> bool:
    return ALL in held or wanted in held


def expand(perms: list[str]) -> list[str]:
    """`*` is never grantable to a custom role, so extending Admin copies every explicit key."""
    return list(PERMISSIONS) if ALL in perms else [p for p in PERMISSIONS if p in perms]
