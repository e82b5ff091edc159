"""Vault / OpenBao client: token, AppRole or Kubernetes auth, KV v2 one path per organization."""

from __future__ import annotations

import hvac

from cxgear.settings import Settings


def vault_client(settings: Settings, *, timeout: float = 5) -> hvac.Client:
    client = hvac.Client(url=settings.vault_address, timeout=timeout)
    if settings.vault_auth == "token":
        if settings.vault_token is not None:
            client.token = settings.vault_token.get_secret_value()
    elif settings.vault_auth == "approle":
        secret_id = (
            settings.vault_secret_id.get_secret_value() if settings.vault_secret_id else None
        )
        client.auth.approle.login(role_id=settings.vault_role_id, secret_id=secret_id)
    else:
        jwt = settings.vault_kubernetes_jwt_path.read_text().strip()
        client.auth.kubernetes.login(role=settings.vault_kubernetes_role, jwt=jwt)
    return client


def vault_ready(client: hvac.Client) -> str | None:
    """None when Vault answers, is unsealed and our token is valid; otherwise why not."""
    try:
        status = client.sys.read_health_status(method="GET")
    except Exception as exc:  # noqa: BLE001 - any transport failure means "not reachable"
        return f"unreachable ({type(exc).__name__})"
    code = getattr(status, "status_code", 200)
    if code not in (200, 429, 472, 473):
        return f"not ready (health status {code})"
    try:
        if not client.is_authenticated():
            return "token not accepted"
    except Exception as exc:  # noqa: BLE001
        return f"unreachable ({type(exc).__name__})"
    return None
