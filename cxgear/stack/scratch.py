"""A throwaway embedded stack (PostgreSQL, Temporal, OpenBao in a temporary directory) with
settings pointing at it, for benchmarks and tooling that need the real servers once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxgear.migrate import migrate
from cxgear.stack.openbao import EmbeddedOpenBao
from cxgear.stack.ports import free_port
from cxgear.stack.postgres import EmbeddedPostgres
from cxgear.stack.temporal import EmbeddedTemporal
from infra.settings import Settings


@dataclass
class ScratchStack:
    settings: Settings
    postgres: EmbeddedPostgres
    temporal: EmbeddedTemporal


@contextmanager
def scratch_stack(
    state: Path, *, durable_temporal: bool, **settings: Any
) -> Iterator[ScratchStack]:
    """Starts the three servers under `state`, migrates, and stops them on exit.

    `durable_temporal` keeps Temporal's state in a SQLite file as `cxgear dev` does (benchmarks);
    otherwise it lives in memory.
    """
    pg = EmbeddedPostgres(state / "postgres", free_port())
    temporal = EmbeddedTemporal(
        state / "temporal.db" if durable_temporal else None,
        free_port(),
        None,
        log_file=state / "temporal.log",
    )
    bao = EmbeddedOpenBao(None, free_port(), dev=True)
    pg.start()
    temporal.start()
    bao.start()
    try:
        migrate(pg.url)
        yield ScratchStack(
            Settings(
                environment="test",
                database_url=pg.url,
                temporal_address=temporal.address,
                vault_address=bao.address,
                vault_token=bao.token,
                secret_key="scratch-secret-key-0123456789-0123456789",
                **settings,
            ),
            pg,
            temporal,
        )
    finally:
        bao.stop()
        temporal.stop()
        pg.stop()
