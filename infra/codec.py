"""AES-256-GCM payload codec; the keyring lives in Vault KV v2 so keys can be rotated.

Every payload (inputs, results, signals, markers, and — with the encoded-attributes failure
converter — failure messages and stack traces) is serialized whole and sealed, so Temporal's
history holds neither the data nor its encoding or type metadata. Each sealed payload names its
key, so rotation only changes which key new payloads use: old histories stay readable as long as
the old key stays in the keyring. Payloads without our encoding pass through, so histories
recorded before the codec still decode and replay.

Each sealed payload also names its owner in clear metadata, bound to the ciphertext as associated
data so it cannot be changed without the payload failing to open: the workflow it belongs to
(taken from the SDK's serialization context, so encoding needs no lookup) or, for payloads sealed
by the codec server's /encode, the organization. The codec server decodes only payloads whose owner
is the caller's organization. Payloads sealed before owners were recorded carry none; they still
open here (workers, journeys, replay) but the codec server refuses them.
"""

from __future__ import annotations

import asyncio
import base64
import copy
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
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec, SerializationContext, WithSerializationContext

from infra.settings import Settings
from infra.vault import vault_client

log = logging.getLogger("cxgear.codec")

ENCODING = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"
# Owner metadata (not secret: workflow ids and organization ids are not PII).
WORKFLOW_META = "cx-workflow-id"
ORG_META = "cx-org-id"
OWNER_METAS = (WORKFLOW_META, ORG_META)
CODEC_PATH = "system/payload-codec"
NONCE_BYTES = 12
# A running process picks up a rotated key within this long (or as soon as it meets a payload
# sealed with a key it does not know yet).
REFRESH_AFTER_S = 300.0
CAS_ATTEMPTS = 5


class CodecKeyError(Exception):
    """A payload names a key that is not in the keyring, or the keyring in Vault is unusable."""


class PayloadTampered(InvalidTag):
    """A sealed payload does not open: its bytes or its key/owner metadata were changed.

    An InvalidTag, as the codec raised before it had a name of its own.
    """


@dataclass(frozen=True)
class PayloadOwner:
    """Whose payload this is, read from the sealed payload's (authenticated) metadata."""

    workflow_id: str | None = None
    org_id: str | None = None


def payload_owner(payload: Payload) -> PayloadOwner | None:
    """The owner a sealed payload names; None for a payload that names none (or is not sealed).

    The name is only trustworthy once the payload has opened: the owner is associated data.
    """
    if payload.metadata.get("encoding") != ENCODING:
        return None
    wf = payload.metadata.get(WORKFLOW_META)
    org = payload.metadata.get(ORG_META)
    if wf is None and org is None:
        return None
    try:
        return PayloadOwner(
            workflow_id=wf.decode() if wf is not None else None,
            org_id=org.decode() if org is not None else None,
        )
    except UnicodeDecodeError:
        return None


def _associated_data(key_id: bytes, owner: tuple[str, bytes] | None) -> bytes:
    # Payloads sealed before owners existed used the key id alone; they keep opening.
    if owner is None:
        return key_id
    return key_id + b"\x00" + owner[0].encode() + b"=" + owner[1]


def _owner_meta(payload: Payload) -> tuple[str, bytes] | None:
    for name in OWNER_METAS:
        value = payload.metadata.get(name)
        if value is not None:
            return name, value
    return None


class _Keys:
    """The keyring state shared by a codec and its per-workflow copies (see with_context)."""

    def __init__(self, keyring: Keyring) -> None:
        self.install(keyring)

    def install(self, keyring: Keyring) -> None:
        # One attribute swap, so concurrent coroutines and threads see a whole keyring or the old one.
        self.state = (keyring.current, {k: AESGCM(v) for k, v in keyring.keys.items()})
        self.loaded_at = time.monotonic()


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


class AesGcmCodec(PayloadCodec, WithSerializationContext):
    """Seals each payload with the current key; opens with whichever key the payload names.

    The SDK calls `with_context` before encoding a workflow's or activity's payloads; the copy it
    gets back stamps the workflow id on what it seals. Copies share the keyring, so a rotation
    picked up by one is seen by all.
    """

    def __init__(
        self, keyring: Keyring, *, settings: Settings | None = None, path: str = CODEC_PATH
    ):
        self._settings, self._path = settings, path
        self._keys = _Keys(keyring)
        self._owner: tuple[str, bytes] | None = None

    @property
    def _state(self) -> tuple[str, dict[str, AESGCM]]:
        return self._keys.state

    @property
    def current_key_id(self) -> str:
        return self._state[0]

    def key_ids(self) -> set[str]:
        return set(self._state[1])

    def with_context(self, context: SerializationContext) -> AesGcmCodec:
        workflow_id = getattr(context, "workflow_id", None)
        return self._owned_by((WORKFLOW_META, workflow_id.encode()) if workflow_id else None)

    def for_organization(self, org_id: str) -> AesGcmCodec:
        """A copy that seals payloads as the organization's (the codec server's /encode)."""
        return self._owned_by((ORG_META, org_id.encode()))

    def _owned_by(self, owner: tuple[str, bytes] | None) -> AesGcmCodec:
        clone = copy.copy(self)
        clone._owner = owner
        return clone

    async def refresh(self) -> None:
        """Reload the keyring from Vault (no-op for a codec built without settings)."""
        if self._settings is None:
            return
        self._keys.loaded_at = time.monotonic()  # one refresh at a time, even if this one fails
        keyring = await asyncio.to_thread(read_keyring, self._settings, self._path)
        if keyring is not None:
            self._keys.install(keyring)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self._settings is not None and time.monotonic() - self._keys.loaded_at > REFRESH_AFTER_S:
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - a Vault outage must not stop workflows
                log.warning("payload codec keyring refresh failed (%s)", type(exc).__name__)
        key_id, keys = self._state
        key_bytes = key_id.encode()
        aead, aad = keys[key_id], _associated_data(key_bytes, self._owner)
        metadata = {"encoding": ENCODING, KEY_ID_META: key_bytes}
        if self._owner is not None:
            metadata[self._owner[0]] = self._owner[1]
        out = []
        for p in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = nonce + aead.encrypt(nonce, p.SerializeToString(), aad)
            out.append(Payload(metadata=metadata, data=sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)  # recorded before the codec, or by a client without one
                continue
            key_bytes = p.metadata.get(KEY_ID_META, b"")
            try:
                key_id = key_bytes.decode()
            except UnicodeDecodeError as exc:
                raise PayloadTampered("payload names a key id that is not text") from exc
            if key_id not in self._state[1]:
                await self.refresh()  # rotated by another process since we loaded the keyring
            aead = self._state[1].get(key_id)
            if aead is None:
                raise CodecKeyError(f"payload sealed with unknown key id {key_id!r}")
            data = p.data
            try:
                plain = aead.decrypt(
                    data[:NONCE_BYTES],
                    data[NONCE_BYTES:],
                    _associated_data(key_bytes, _owner_meta(p)),
                )
            except InvalidTag as exc:
                raise PayloadTampered("payload does not open: it was altered") from exc
            decoded = Payload()
            try:
                decoded.ParseFromString(plain)
            except DecodeError as exc:  # sealed by us, so only a bug gets here
                raise PayloadTampered("opened payload is not a Temporal payload") from exc
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
