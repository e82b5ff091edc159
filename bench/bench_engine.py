"""Engine benchmark on the embedded stack; prints one JSON line.

Ours: a job of a 4-step spinner (log → decision → tag → api_call to a loopback server).
Limit, in the same run: bare parent/child workflows with the same batching and 4 no-op activities.
Usage: python -m bench.bench_engine [--records 10000] [--rounds N]

`--rounds N` alternates the limit and ours N times (limit, ours, limit, ours, …), each on a fresh
stack, and reports every round plus the median and spread of the ratios: this machine is noisy,
and one pair of runs can be off by a fifth either way.

`--history-bytes` measures only the history size of one record (the encoded events Temporal
returns for it) for the 4-step spinner and for a 10-step spinner whose every step outputs 2 KB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from temporalio.client import Client

from api.app import create_app
from bench.baseline import BaselineParent, ParentInput
from cxgear.stack.scratch import scratch_stack
from infra.db import create_engine
from infra.settings import Settings
from infra.temporal_client import connect_temporal
from tests.builders import contacts_csv, make_spinner, make_table, project, signup, wait_job
from tests.fakes.crm_api import running_crm
from tests.workflows.workers import running_workers
from workflows.contracts import job_workflow_id

log = logging.getLogger("bench.engine")


class Sampler:
    """Polls a process's RSS and CPU time (children included) until stopped."""

    def __init__(self, pid: int, *, tree: bool = True) -> None:
        self.proc = psutil.Process(pid)
        self.tree = tree
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.2)

    def cpu_ms(self) -> float:
        """CPU of the process, its reaped children and its live descendants (PostgreSQL backends)."""
        t = self.proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in self.proc.children(recursive=True) if self.tree else []:
            try:
                c = child.cpu_times()
            except psutil.Error:
                continue
            total += c.user + c.system
        return total * 1000

    def stop(self) -> None:
        self._stop.set()


async def max_history(client: Client, workflow_id: str) -> int:
    largest = 0
    async for wf in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        largest = max(largest, wf.history_length or 0)
    return largest


async def journeys_archived(
    settings: Settings, job_id: str, records: int, *, timeout: float = 600
) -> tuple[int, float]:
    """Waits for the job's journey snapshots; returns how many there are and the wait in s."""
    engine = create_engine(settings.database_url)
    began = time.monotonic()
    try:
        while True:
            async with engine.connect() as conn:
                stored = int(
                    (
                        await conn.execute(
                            text(
                                "select count(*) from journey_snapshot s"
                                " join record r on r.id = s.record_id where r.job_id = :job"
                            ),
                            {"job": job_id},
                        )
                    ).scalar_one()
                )
            waited = time.monotonic() - began
            if stored >= records or waited > timeout:
                return stored, round(waited, 1)
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()


def four_steps(crm: str) -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": "hello",
                "type": "log",
                "message": "Calling {{name}}",
                "next": "route",
            },
            {
                "id": "route",
                "type": "decision",
                "branches": [{"when": "amount >= 100", "label": "big", "next": "tag"}],
                "default": "tag",
            },
            {"id": "tag", "type": "tag", "disposition": "Done", "next": "call"},
            {
                "id": "call",
                "type": "api_call",
                "method": "GET",
                "url": f"http://{crm}/c/{{{{name}}}}",
            },
        ]
    }


def ten_steps_2kb_outputs(crm: str) -> dict[str, Any]:
    """Ten HTTP steps; the loopback CRM echoes the 2 KB path, which each step keeps as an output."""
    pad = "x" * 2048
    return {
        "steps": [
            {
                "id": f"s{n}",
                "type": "api_call",
                "method": "GET",
                "url": f"http://{crm}/c/{pad}",
                "outputs": {f"echo{n}": "path"},
                **({"next": f"s{n + 1}"} if n < 9 else {}),
            }
            for n in range(10)
        ]
    }


async def record_history_bytes(client: Client, workflow_id: str) -> int:
    """Bytes of a record's history as Temporal returns it (encoded events, payloads encrypted)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(event.ByteSize() for event in history.events)


async def history_bytes(settings: Settings) -> dict[str, int]:
    """History bytes of one record of the 4-step spinner and of the 10-step, 2 KB-output one."""
    sizes: dict[str, int] = {}
    async with running_workers(settings) as client:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with AsyncClient(
                transport=ASGITransport(app=app), base_url="http://bench", timeout=120
            ) as c:
                admin = await signup(c)
                p = await project(c, admin)
                table = await make_table(c, admin, project_id=p["id"], csv_text=contacts_csv(1))
                crm = settings.http_allowed_hosts[0]
                for name, definition in (
                    ("four_steps", four_steps(crm)),
                    ("ten_steps_2kb_outputs", ten_steps_2kb_outputs(crm)),
                ):
                    spinner = await make_spinner(
                        c, admin, project_id=p["id"], definition=definition
                    )
                    r = await c.post(
                        f"/api/v1/spinners/{spinner['id']}/run",
                        json={"tableId": table["id"]},
                        headers=admin.headers,
                    )
                    job_id = r.json()["id"]
                    await wait_job(c, admin, job_id)
                    rec = (
                        await c.get(f"/api/v1/jobs/{job_id}/records?limit=1", headers=admin.headers)
                    ).json()["data"][0]
                    assert rec["status"] == "completed", rec
                    sizes[name] = await record_history_bytes(client, f"rec-{rec['id']}")
    return sizes


async def ours(
    settings: Settings, temporal_pid: int, postgres_pid: int, records: int
) -> dict[str, Any]:
    env = {
        **os.environ,
        "CXGEAR_DATABASE_URL": settings.database_url,
        "CXGEAR_TEMPORAL_ADDRESS": settings.temporal_address,
        # The worker loads the payload codec's keys from Vault, like the API in this process.
        "CXGEAR_VAULT_ADDRESS": settings.vault_address,
        "CXGEAR_VAULT_TOKEN": settings.vault_token.get_secret_value()
        if settings.vault_token
        else "",
        "CXGEAR_SECRET_KEY": settings.secret_key.get_secret_value(),
        "CXGEAR_TASK_QUEUE_PREFIX": settings.task_queue_prefix,
        "CXGEAR_HTTP_ALLOWED_HOSTS": json.dumps(settings.http_allowed_hosts),
        "CXGEAR_ENVIRONMENT": "test",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "cxgear", "worker"], env=env, stdout=subprocess.DEVNULL
    )
    wsample, tsample, psample = Sampler(worker.pid), Sampler(temporal_pid), Sampler(postgres_pid)
    me = Sampler(os.getpid(), tree=False)
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            async with AsyncClient(
                transport=ASGITransport(app=app), base_url="http://bench", timeout=600
            ) as c:
                admin = await signup(c)
                p = await project(c, admin)
                table = await make_table(
                    c, admin, project_id=p["id"], csv_text=contacts_csv(records)
                )
                definition = four_steps(settings.http_allowed_hosts[0])
                spinner = await make_spinner(c, admin, project_id=p["id"], definition=definition)
                await asyncio.sleep(2)  # let the worker connect before the clock starts
                w0, t0, p0, m0 = wsample.cpu_ms(), tsample.cpu_ms(), psample.cpu_ms(), me.cpu_ms()
                start = time.monotonic()
                r = await c.post(
                    f"/api/v1/spinners/{spinner['id']}/run",
                    json={"tableId": table["id"]},
                    headers=admin.headers,
                )
                job_id = r.json()["id"]
                last_note = time.monotonic()
                while True:
                    job = (await c.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)).json()
                    if job["status"] in ("completed", "partial", "failed", "cancelled"):
                        break
                    if time.monotonic() - last_note >= 60:
                        # Progress on stderr for long (scale) runs: is memory flat or growing?
                        last_note = time.monotonic()
                        log.info(
                            "%.0fs: %s done, worker RSS %.0f MB (peak %.0f MB)",
                            last_note - start,
                            job["counts"]["completed"] + job["counts"]["failed"],
                            psutil.Process(worker.pid).memory_info().rss / 2**20,
                            wsample.peak_rss / 2**20,
                        )
                    await asyncio.sleep(0.5)
                elapsed = time.monotonic() - start
                w1, t1, p1, m1 = wsample.cpu_ms(), tsample.cpu_ms(), psample.cpu_ms(), me.cpu_ms()
                client = await connect_temporal(settings)
                history = await max_history(client, job_workflow_id(job_id))
                first = (
                    await c.get(f"/api/v1/jobs/{job_id}/records?limit=1", headers=admin.headers)
                ).json()["data"][0]
                record_bytes = await record_history_bytes(client, f"rec-{first['id']}")
                # The API archives journeys as records close; how far behind the job is it?
                archived, archive_lag = await journeys_archived(settings, job_id, records)
        return {
            "records": records,
            "status": job["status"],
            "completed": job["counts"]["completed"],
            "seconds": round(elapsed, 2),
            "records_per_s": round(records / elapsed, 1),
            "worker_cpu_ms_per_record": round((w1 - w0) / records, 2),
            "temporal_cpu_ms_per_record": round((t1 - t0) / records, 2),
            "postgres_cpu_ms_per_record": round((p1 - p0) / records, 2),
            "api_and_loopback_crm_cpu_ms_per_record": round((m1 - m0) / records, 2),
            "worker_peak_rss_mb": round(wsample.peak_rss / 2**20, 1),
            "temporal_peak_rss_mb": round(tsample.peak_rss / 2**20, 1),
            "largest_job_history_events": history,
            "history_bytes_per_record": record_bytes,
            "journeys_archived": archived,
            "journeys_archived_s_after_job": archive_lag,
        }
    finally:
        for sampler in (wsample, tsample, psample, me):
            sampler.stop()
        worker.terminate()
        worker.wait(30)


async def baseline(
    settings: Settings, temporal_pid: int, records: int, *, activities: int = 4
) -> dict[str, Any]:
    queue = f"baseline-{uuid.uuid4().hex[:6]}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "bench.baseline", settings.temporal_address, queue],
        stdout=subprocess.DEVNULL,
    )
    wsample, tsample = Sampler(worker.pid), Sampler(temporal_pid)
    try:
        client = await Client.connect(settings.temporal_address)
        await asyncio.sleep(2)
        w0, t0 = wsample.cpu_ms(), tsample.cpu_ms()
        start = time.monotonic()
        await client.execute_workflow(
            BaselineParent.run,
            ParentInput(
                records,
                settings.job_window,
                settings.job_batch,
                queue,
                per_run=settings.job_children_per_run,
                activities=activities,
            ),
            id=f"baseline-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
        elapsed = time.monotonic() - start
        return {
            "seconds": round(elapsed, 2),
            "records_per_s": round(records / elapsed, 1),
            "worker_cpu_ms_per_record": round((wsample.cpu_ms() - w0) / records, 2),
            "temporal_cpu_ms_per_record": round((tsample.cpu_ms() - t0) / records, 2),
        }
    finally:
        wsample.stop()
        tsample.stop()
        worker.terminate()
        worker.wait(30)


async def fresh_round(records: int, *, side: str) -> dict[str, Any]:
    """One run of `side` ("baseline" or "ours") on a stack of its own."""
    with tempfile.TemporaryDirectory(prefix="cxgear-bench-") as tmp, running_crm() as crm:
        with scratch_stack(
            Path(tmp),
            durable_temporal=True,
            http_allowed_hosts=[crm.allowed],
            task_queue_prefix=f"b{uuid.uuid4().hex[:6]}",
        ) as stack:
            assert stack.temporal.process is not None and stack.postgres.pid is not None
            if side == "baseline":
                return await baseline(stack.settings, stack.temporal.process.pid, records)
            return await ours(
                stack.settings, stack.temporal.process.pid, stack.postgres.pid, records
            )


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


async def alternating(records: int, rounds: int) -> dict[str, Any]:
    pairs: list[dict[str, Any]] = []
    for n in range(rounds):
        base = await fresh_round(records, side="baseline")
        mine = await fresh_round(records, side="ours")
        log.info(
            "round %d: baseline %s rec/s, ours %s rec/s",
            n + 1,
            base["records_per_s"],
            mine["records_per_s"],
        )
        pairs.append({"baseline": base, "ours": mine})
    ratios = [p["ours"]["records_per_s"] / p["baseline"]["records_per_s"] for p in pairs]
    figures: dict[str, Any] = {
        "benchmark": "engine_alternating",
        "records": records,
        "rounds": pairs,
        "ratio_ours_over_baseline": spread(ratios),
        "records_per_s": {
            side: spread([p[side]["records_per_s"] for p in pairs]) for side in ("baseline", "ours")
        },
        "worker_cpu_ms_per_record": {
            side: spread([p[side]["worker_cpu_ms_per_record"] for p in pairs])
            for side in ("baseline", "ours")
        },
        "temporal_cpu_ms_per_record": {
            side: spread([p[side]["temporal_cpu_ms_per_record"] for p in pairs])
            for side in ("baseline", "ours")
        },
        "all_completed": all(p["ours"]["completed"] == records for p in pairs),
    }
    figures["targets"] = {"ratio_median": 0.9, "worker_cpu_ms_per_record_median": 25}
    figures["meets_targets"] = (
        figures["ratio_ours_over_baseline"]["median"] >= 0.9
        and figures["worker_cpu_ms_per_record"]["ours"]["median"] <= 25
        and figures["all_completed"]
    )
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="alternate the limit and ours this many times, each on a fresh stack",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="scale run: only our job (records/s, CPU, RSS, history), no ratio",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time children that run no activity: the server's floor for a child per record",
    )
    parser.add_argument(
        "--history-bytes",
        action="store_true",
        help="only the history bytes of one 4-step record and one 10-step record (2 KB outputs)",
    )
    args = parser.parse_args()
    if args.rounds:
        print(json.dumps(await alternating(args.records, args.rounds)))  # noqa: T201
        return
    if args.history_bytes:
        with tempfile.TemporaryDirectory(prefix="cxgear-bench-") as tmp, running_crm() as crm:
            with scratch_stack(
                Path(tmp), durable_temporal=False, http_allowed_hosts=[crm.allowed]
            ) as stack:
                sizes = await history_bytes(stack.settings)
        # The benchmark's output is this one JSON line.
        print(json.dumps({"benchmark": "engine_history_bytes", "history_bytes_per_record": sizes}))  # noqa: T201
        return
    with tempfile.TemporaryDirectory(prefix="cxgear-bench-") as tmp, running_crm() as crm:
        state = Path(tmp)
        with scratch_stack(
            state,
            durable_temporal=True,
            http_allowed_hosts=[crm.allowed],
            task_queue_prefix=f"b{uuid.uuid4().hex[:6]}",
        ) as stack:
            settings, temporal = stack.settings, stack.temporal
            assert temporal.process is not None
            base = (
                None
                if args.no_baseline
                else await baseline(settings, temporal.process.pid, args.records)
            )
            floor = (
                await baseline(settings, temporal.process.pid, args.records, activities=0)
                if args.floor
                else None
            )
            assert stack.postgres.pid is not None
            mine = await ours(settings, temporal.process.pid, stack.postgres.pid, args.records)
        temporal_log = temporal.log_file
        # The server warns (at warn level, which is what it logs) when a history nears its limits.
        history_warnings = sum(
            1
            for line in temporal_log.read_text(errors="replace").splitlines()
            if "exceeds warn limit" in line
        )
    figures: dict[str, Any] = {"benchmark": "engine", "ours": mine}
    mine["history_size_warnings"] = history_warnings
    if floor is not None:
        figures["floor_children_without_activities"] = floor
    if base is None:
        # Scale run: the bars are memory and history size, not speed.
        figures["targets"] = {"worker_peak_rss_mb": 500}
        figures["meets_targets"] = (
            mine["worker_peak_rss_mb"] <= 500
            and mine["completed"] == args.records
            and mine["journeys_archived"] == args.records
            and history_warnings == 0
        )
    else:
        ratio = mine["records_per_s"] / base["records_per_s"]
        figures["baseline"] = base
        figures["ratio_ours_over_baseline"] = round(ratio, 3)
        figures["targets"] = {"ratio": 1.0, "records_per_s": 25}
        figures["meets_targets"] = ratio >= 1.0 and mine["records_per_s"] >= 25
    print(json.dumps(figures))  # noqa: T201 - the benchmark's output is this one JSON line


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main())
