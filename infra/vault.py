"""Vault / OpenBao client: token, AppRole or Kubernetes auth, KV v2 one path per organization."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import hvac
import requests

from infra.settings import Settings

log = logging.getLogger(__name__)


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


# --- Organization secrets and integration credentials -------------------------------------------

T = TypeVar("T")

# Transport failures, a sealed or uninitialised server, 5xx and a token Vault no longer accepts:
# none of them is the caller's fault and all may pass, so callers treat them as retryable.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    requests.exceptions.RequestException,
    hvac.exceptions.VaultDown,
    hvac.exceptions.VaultNotInitialized,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
    hvac.exceptions.UnexpectedError,
    hvac.exceptions.Forbidden,
    hvac.exceptions.Unauthorized,
    OSError,
)
_REFUSED = (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized)
# Renew a renewable token once less than this share of its period is left.
RENEW_FRACTION = 1 / 3


class VaultUnavailable(Exception):
    """Vault is unreachable, sealed or refused our token. Retryable; never carries a secret."""


class SecretNotFound(Exception):
    pass


class SecretVersionConflict(Exception):
    """A check-and-set write named a version that is not the current one."""

    def __init__(self, name: str, expected: int, current: int | None) -> None:
        now = "does not exist" if current is None else f"is at version {current}"
        super().__init__(f"secret {name!r} {now}; the write expected version {expected}")
        self.name = name
        self.expected = expected
        self.current = current


@dataclass(frozen=True)
class SecretInfo:
    name: str
    version: int
    updated_at: datetime | None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _current_version(metadata: dict[str, Any]) -> int:
    return int(metadata["data"]["current_version"])


class SecretStore:
    """KV v2 at `settings.vault_mount`, one path per organization.

    Named secrets live at `orgs/{org_id}/secrets/{name}` as `{"value": ...}`; integration
    credentials at `orgs/{org_id}/integrations/{integration_id}`. hvac is synchronous, so every
    call runs in a worker thread; one lock serialises token bookkeeping (login, renewal).
    Built without touching the network: the API starts, and reports 503, while Vault is down.
    """

    def __init__(self, settings: Settings, *, timeout: float = 5) -> None:
        self.settings = settings
        self.mount = settings.vault_mount
        self.timeout = timeout
        self._client: hvac.Client | None = None
        self._lock = threading.Lock()
        # Monotonic deadline of the current token; None until learnt, inf when it never expires.
        self._expires_at: float | None = None
        self._period = 0.0
        self._renewable = False

    # -- paths ---------------------------------------------------------------------------------

    @staticmethod
    def secret_path(org_id: uuid.UUID, name: str) -> str:
        return f"orgs/{org_id}/secrets/{name}"

    @staticmethod
    def credentials_path(org_id: uuid.UUID, integration_id: uuid.UUID) -> str:
        return f"orgs/{org_id}/integrations/{integration_id}"

    @staticmethod
    def system_path(org_id: uuid.UUID, name: str) -> str:
        # Beside, not under, `secrets/`: the vault routes neither list nor overwrite these.
        return f"orgs/{org_id}/system/{name}"

    # -- named secrets -------------------------------------------------------------------------

    async def list_secrets(self, org_id: uuid.UUID) -> list[SecretInfo]:
        base = f"orgs/{org_id}/secrets"

        def run(client: hvac.Client) -> list[SecretInfo]:
            kv = client.secrets.kv.v2
            try:
                keys = kv.list_secrets(path=base, mount_point=self.mount)["data"]["keys"]
            except hvac.exceptions.InvalidPath:
                return []
            found = []
            for key in sorted(k for k in keys if not k.endswith("/")):
                try:
                    meta = kv.read_secret_metadata(path=f"{base}/{key}", mount_point=self.mount)
                except hvac.exceptions.InvalidPath:
                    continue  # deleted between the listing and now
                found.append(
                    SecretInfo(
                        key, _current_version(meta), _parse_time(meta["data"].get("updated_time"))
                    )
                )
            return found

        return await self._run(run)

    async def secret_info(self, org_id: uuid.UUID, name: str) -> SecretInfo | None:
        path = self.secret_path(org_id, name)

        def run(client: hvac.Client) -> SecretInfo | None:
            meta = self._metadata(client, path)
            if meta is None:
                return None
            return SecretInfo(
                name, _current_version(meta), _parse_time(meta["data"].get("updated_time"))
            )

        return await self._run(run)

    async def write_secret(
        self, org_id: uuid.UUID, name: str, value: str, *, cas: int | None = None
    ) -> SecretInfo:
        """Create or add a version. `cas=0`: only if absent; `cas=n`: only if current is n."""
        path = self.secret_path(org_id, name)

        def run(client: hvac.Client) -> SecretInfo:
            try:
                result = client.secrets.kv.v2.create_or_update_secret(
                    path=path, secret={"value": value}, cas=cas, mount_point=self.mount
                )
            except hvac.exceptions.InvalidRequest as exc:
                if cas is None or "check-and-set" not in str(exc):
                    raise
                meta = self._metadata(client, path)
                current = None if meta is None else _current_version(meta)
                raise SecretVersionConflict(name, cas, current) from None
            data = result["data"]
            return SecretInfo(name, int(data["version"]), _parse_time(data.get("created_time")))

        return await self._run(run)

    async def delete_secret(self, org_id: uuid.UUID, name: str) -> int:
        """Delete every version; returns the version that was current. SecretNotFound if absent."""
        path = self.secret_path(org_id, name)

        def run(client: hvac.Client) -> int:
            meta = self._metadata(client, path)
            if meta is None:
                raise SecretNotFound(name)
            client.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point=self.mount)
            return _current_version(meta)

        return await self._run(run)

    async def read_secret(self, org_id: uuid.UUID, name: str) -> str:
        """The current value. For workers only: no API route ever returns it."""
        data = await self._read(self.secret_path(org_id, name))
        if data is None or not isinstance(data.get("value"), str):
            raise SecretNotFound(name)
        return str(data["value"])

    # -- system documents (the product's own per-organization secrets) -------------------------

    async def read_system(self, org_id: uuid.UUID, name: str) -> tuple[dict[str, Any], int] | None:
        """The current document and its version, or None when it was never written."""
        path = self.system_path(org_id, name)

        def run(client: hvac.Client) -> tuple[dict[str, Any], int] | None:
            try:
                result = client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.mount, raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath:
                return None
            return dict(result["data"]["data"]), int(result["data"]["metadata"]["version"])

        return await self._run(run)

    async def write_system(
        self, org_id: uuid.UUID, name: str, document: dict[str, Any], *, cas: int
    ) -> int:
        """Write a new version only if `cas` is the current one (0: only if absent); returns it.

        SecretVersionConflict when another writer got there first.
        """
        path = self.system_path(org_id, name)

        def run(client: hvac.Client) -> int:
            try:
                result = client.secrets.kv.v2.create_or_update_secret(
                    path=path, secret=document, cas=cas, mount_point=self.mount
                )
            except hvac.exceptions.InvalidRequest as exc:
                if "check-and-set" not in str(exc):
                    raise
                meta = self._metadata(client, path)
                current = None if meta is None else _current_version(meta)
                raise SecretVersionConflict(name, cas, current) from None
            return int(result["data"]["version"])

        return await self._run(run)

    # -- integration credentials ---------------------------------------------------------------

    async def write_credentials(
        self, org_id: uuid.UUID, integration_id: uuid.UUID, credentials: dict[str, str]
    ) -> str:
        """Store the whole credential set (a new version); returns its path for `credentials_ref`."""
        path = self.credentials_path(org_id, integration_id)

        def run(client: hvac.Client) -> None:
            client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=dict(credentials), mount_point=self.mount
            )

        await self._run(run)
        return path

    async def read_credentials(
        self, org_id: uuid.UUID, integration_id: uuid.UUID
    ) -> dict[str, str]:
        data = await self._read(self.credentials_path(org_id, integration_id))
        if data is None:
            raise SecretNotFound(str(integration_id))
        return {str(k): str(v) for k, v in data.items()}

    async def delete_credentials(self, org_id: uuid.UUID, integration_id: uuid.UUID) -> None:
        """Delete every version; already absent is fine."""
        path = self.credentials_path(org_id, integration_id)

        def run(client: hvac.Client) -> None:
            client.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point=self.mount)

        await self._run(run)

    # -- plumbing ------------------------------------------------------------------------------

    async def _read(self, path: str) -> dict[str, Any] | None:
        def run(client: hvac.Client) -> dict[str, Any] | None:
            try:
                result = client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.mount, raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath:
                return None
            data: dict[str, Any] = result["data"]["data"]
            return data

        return await self._run(run)

    def _metadata(self, client: hvac.Client, path: str) -> dict[str, Any] | None:
        try:
            meta: dict[str, Any] = client.secrets.kv.v2.read_secret_metadata(
                path=path, mount_point=self.mount
            )
        except hvac.exceptions.InvalidPath:
            return None
        return meta

    async def _run(self, fn: Callable[[hvac.Client], T]) -> T:
        return await asyncio.to_thread(self._call, fn)

    def _call(self, fn: Callable[[hvac.Client], T]) -> T:
        try:
            client = self._authenticated()
            try:
                return fn(client)
            except _REFUSED:
                if self.settings.vault_auth == "token":
                    raise
                # Revoked or expired sooner than its TTL said: log in again, once.
                with self._lock:
                    client = self._login()
                return fn(client)
        except _UNAVAILABLE as exc:
            log.warning("Vault unavailable: %s", type(exc).__name__)
            raise VaultUnavailable(_why(exc)) from exc

    def _authenticated(self) -> hvac.Client:
        with self._lock:
            if self._client is None:
                self._client = hvac.Client(url=self.settings.vault_address, timeout=self.timeout)
                if self.settings.vault_auth == "token" and self.settings.vault_token is not None:
                    self._client.token = self.settings.vault_token.get_secret_value()
            if self._expires_at is None:
                if self.settings.vault_auth == "token":
                    self._learn_token(self._client)
                else:
                    return self._login()
            remaining = self._expires_at - time.monotonic()  # type: ignore[operator]
            if remaining <= 0 and self.settings.vault_auth != "token":
                return self._login()
            if self._renewable and remaining < self._period * RENEW_FRACTION:
                self._renew(self._client)
            return self._client

    def _learn_token(self, client: hvac.Client) -> None:
        data = client.auth.token.lookup_self()["data"]
        ttl = float(data.get("ttl") or 0)
        # A zero TTL (root, dev tokens) never expires, so there is nothing to renew.
        self._set_lease(
            ttl,
            bool(data.get("renewable")),
            float(data.get("period") or data.get("creation_ttl") or ttl),
        )

    def _login(self) -> hvac.Client:
        client = self._client or hvac.Client(url=self.settings.vault_address, timeout=self.timeout)
        self._client = client
        try:
            if self.settings.vault_auth == "approle":
                secret_id = (
                    self.settings.vault_secret_id.get_secret_value()
                    if self.settings.vault_secret_id
                    else None
                )
                result = client.auth.approle.login(
                    role_id=self.settings.vault_role_id, secret_id=secret_id
                )
            else:
                jwt = self.settings.vault_kubernetes_jwt_path.read_text().strip()
                result = client.auth.kubernetes.login(
                    role=self.settings.vault_kubernetes_role, jwt=jwt
                )
        except hvac.exceptions.InvalidRequest as exc:
            # A wrong role or secret id is the operator's to fix, not the API caller's.
            raise hvac.exceptions.Unauthorized("Vault login refused") from exc
        auth = result["auth"]
        lease = float(auth.get("lease_duration") or 0)
        self._set_lease(lease, bool(auth.get("renewable")), lease)
        return client

    def _renew(self, client: hvac.Client) -> None:
        auth = client.auth.token.renew_self()["auth"]
        lease = float(auth.get("lease_duration") or 0)
        if lease < self._period * RENEW_FRACTION:
            # Capped by the token's max TTL: renewing again would not help, so stop trying
            # (AppRole/Kubernetes log in afresh once it expires).
            self._renewable = False
        self._expires_at = time.monotonic() + lease if lease > 0 else math.inf

    def _set_lease(self, ttl: float, renewable: bool, period: float) -> None:
        self._expires_at = time.monotonic() + ttl if ttl > 0 else math.inf
        self._renewable = renewable and ttl > 0
        self._period = period


def _why(exc: BaseException) -> str:
    if isinstance(exc, hvac.exceptions.VaultDown):
        return "Vault is sealed or in maintenance"
    if isinstance(exc, _REFUSED):
        return "Vault refused the service token"
    if isinstance(exc, requests.exceptions.Timeout):
        return "Vault did not answer in time"
    if isinstance(exc, requests.exceptions.RequestException | OSError):
        return "Vault cannot be reached"
    return "Vault answered with an error"
