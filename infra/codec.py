"""AES-256-GCM payload codec; the keyring lives in Vault KV v2 so keys can be rotated.

Every payload (inputs, results, signals, markers, and — with the encoded-attributes failure
converter — failure messages and stack traces) is serialized whole and sealed, so Temporal's
history holds neither the data nor its encoding or type metadata. Each sealed payload names its
key, so rotation only changes which key new payloads use: old histories stay readable as long as
the old key stays in the keyring. Payloads without our encoding pass through, so histories
recorded before the codec still decode and replay.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import hvac
import hvac.exceptions
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from infra.settings import Settings
from infra.vault import vault_client

log = logging.getLogger("cxgear.codec")

ENCODING = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"
CODEC_PATH = "system/payload-codec"
NONCE_BYTES = 12
# A running process picks up a rotated key within this long (or as soon as it meets a payload
# sealed with a key it does not know yet).
REFRESH_AFTER_S = 300.0
CAS_ATTEMPTS = 5


class CodecKeyError(Exception):
    """A payload names a key that is not in the keyring, or the keyring in Vault is unusable."""


@dataclass(frozen=True)
class Keyring:
    current: str
    keys: dict[str, bytes]

    @classmethod
    def from_secret(cls, data: dict[str, Any]) -> Keyring:
        try:
            keys = {str(k): base64.b64decode(v, validate=True) for k, v in data["keys"].items()}
            current = str(data["current"])
        except (KeyError, AttributeError, ValueError) as exc:
            raise CodecKeyError("payload codec keyring in Vault is malformed") from exc
        if current not in keys or any(len(k) != 32 for k in keys.values()):
            raise CodecKeyError("payload codec keyring in Vault is malformed")
        return cls(current, keys)

    def to_secret(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()},
        }

    def with_new_key(self) -> Keyring:
        key_id = new_key_id()
        return Keyring(key_id, {**self.keys, key_id: AESGCM.generate_key(bit_length=256)})


def new_key_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


class AesGcmCodec(PayloadCodec):
    """Seals each payload with the current key; opens with whichever key the payload names."""

    def __init__(
        self, keyring: Keyring, *, settings: Settings | None = None, path: str = CODEC_PATH
    ):
        self._settings, self._path = settings, path
        self._install(keyring)

    def _install(self, keyring: Keyring) -> None:
        # One attribute swap, so concurrent coroutines and threads see a whole keyring or the old one.
        self._state = (keyring.current, {k: AESGCM(v) for k, v in keyring.keys.items()})
        self._loaded_at = time.monotonic()

    @property
    def current_key_id(self) -> str:
        return self._state[0]

    def key_ids(self) -> set[str]:
        return set(self._state[1])

    async def refresh(self) -> None:
        """Reload the keyring from Vault (no-op for a codec built without settings)."""
        if self._settings is None:
            return
        self._loaded_at = time.monotonic()  # one refresh at a time, even if this one fails
        keyring = await asyncio.to_thread(read_keyring, self._settings, self._path)
        if keyring is not None:
            self._install(keyring)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self._settings is not None and time.monotonic() - self._loaded_at > REFRESH_AFTER_S:
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - a Vault outage must not stop workflows
                log.warning("payload codec keyring refresh failed (%s)", type(exc).__name__)
        key_id, keys = self._state
        aead, aad = keys[key_id], key_id.encode()
        out = []
        for p in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = nonce + aead.encrypt(nonce, p.SerializeToString(), aad)
            out.append(Payload(metadata={"encoding": ENCODING, KEY_ID_META: aad}, data=sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)  # recorded before the codec, or by a client without one
                continue
            key_id = p.metadata.get(KEY_ID_META, b"").decode()
            if key_id not in self._state[1]:
                await self.refresh()  # rotated by another process since we loaded the keyring
            aead = self._state[1].get(key_id)
            if aead is None:
                raise CodecKeyError(f"payload sealed with unknown key id {key_id!r}")
            data = p.data
            plain = aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
            decoded = Payload()
            decoded.ParseFromString(plain)
            out.append(decoded)
        return out


# --- Vault: sync hvac, called through asyncio.to_thread -------------------------------------


def _kv(settings: Settings) -> Any:
    return vault_client(settings).secrets.kv.v2


def _read(kv: Any, mount: str, path: str) -> tuple[Keyring, int] | None:
    try:
        resp = kv.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)
    except hvac.exceptions.InvalidPath:
        return None
    return Keyring.from_secret(resp["data"]["data"]), int(resp["data"]["metadata"]["version"])


def _cas_write(kv: Any, mount: str, path: str, keyring: Keyring, cas: int) -> bool:
    """False when another writer got there first (the check-and-set version did not match)."""
    try:
        kv.create_or_update_secret(
            path=path, secret=keyring.to_secret(), cas=cas, mount_point=mount
        )
    except hvac.exceptions.InvalidRequest as exc:
        if "check-and-set" in str(exc):
            return False
        raise
    return True


def read_keyring(settings: Settings, path: str = CODEC_PATH) -> Keyring | None:
    found = _read(_kv(settings), settings.vault_mount, path)
    return found[0] if found else None


def ensure_keyring(settings: Settings, path: str = CODEC_PATH) -> Keyring:
    """The keyring at `path`, created on first use; concurrent creators agree on one key."""
    kv, mount = _kv(settings), settings.vault_mount
    for _ in range(CAS_ATTEMPTS):
        found = _read(kv, mount, path)
        if found is not None:
            return found[0]
        fresh = Keyring("", {}).with_new_key()
        if _cas_write(kv, mount, path, fresh, cas=0):
            log.info("created payload codec keyring with key %s", fresh.current)
            return fresh
    raise CodecKeyError("could not create the payload codec keyring in Vault")


def rotate_keyring(settings: Settings, path: str = CODEC_PATH) -> Keyring:
    kv, mount = _kv(settings), settings.vault_mount
    for _ in range(CAS_ATTEMPTS):
        found = _read(kv, mount, path)
        if found is None:
            ensure_keyring(settings, path)
            continue
        keyring, version = found
        rotated = keyring.with_new_key()
        if _cas_write(kv, mount, path, rotated, cas=version):
            log.info("rotated payload codec key %s -> %s", keyring.current, rotated.current)
            return rotated
    raise CodecKeyError("could not rotate the payload codec key: Vault kept changing under us")


async def load_codec(settings: Settings, *, path: str = CODEC_PATH) -> AesGcmCodec:
    keyring = await asyncio.to_thread(ensure_keyring, settings, path)
    return AesGcmCodec(keyring, settings=settings, path=path)


async def rotate_codec_key(settings: Settings, *, path: str = CODEC_PATH) -> str:
    """Add a new current key; returns its id. Old keys stay so old histories still decode."""
    return (await asyncio.to_thread(rotate_keyring, settings, path)).current
