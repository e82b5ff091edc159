"""Mixed-load benchmark of the API on the embedded stack (loopback only); prints one JSON line.

A job of `--records` records runs in the background while locust (headless, in a subprocess)
drives records pages, journeys, job detail and progress, ingest batches, /auth/me, project
listing and forged Twilio webhooks, with `--background-records` more records in the database.
Figures count from the moment every user is spawned (the steady load, not the ramp).
GET /healthz runs in the same mix as the floor: its p99 is what the co-located machine, the
API's event loop and locust add to any request, the limit the endpoints' p99 is set beside.
Each user count runs for `--seconds`, between a window of the job alone (its idle rate) and a
window beside `bench.cpu_burner` taking the cores the load took (the API, locust, and the
PostgreSQL cores the API's queries added): the job's share of its idle rate under load is set
beside its share next to a load that only costs CPU.
Usage: python -m bench.bench_load [--users 20,40,80] [--seconds 60] [--records 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import text

from bench.bench_engine import Sampler
from cxgear.stack.ports import free_port
from cxgear.stack.scratch import scratch_stack
from infra.db import create_engine
from infra.settings import Settings
from tests.builders import api_key, contacts_csv, make_spinner, make_table, project, signup
from tests.fakes.crm_api import running_crm

TARGETS = {"p99_ms_at_40": 250, "errors_at_80": 0, "background_share_at_40": 0.7}
# The name bench/locustfile.py gives GET /healthz: no database, session or Temporal work, so its
# p99 is what the machine, the API's event loop and locust add to any request at that load.
FLOOR = "floor (healthz)"
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def env_of(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "CXGEAR_DATABASE_URL": settings.database_url,
        "CXGEAR_TEMPORAL_ADDRESS": settings.temporal_address,
        "CXGEAR_VAULT_ADDRESS": settings.vault_address,
        "CXGEAR_VAULT_TOKEN": settings.vault_token.get_secret_value()
        if settings.vault_token
        else "",
        "CXGEAR_SECRET_KEY": settings.secret_key.get_secret_value(),
        "CXGEAR_TASK_QUEUE_PREFIX": settings.task_queue_prefix,
        "CXGEAR_HTTP_ALLOWED_HOSTS": json.dumps(settings.http_allowed_hosts),
        "CXGEAR_ENVIRONMENT": "test",
    }


async def load_background(settings: Settings, project_id: str, spinner_id: str, n: int) -> str:
    """`n` finished records in one old job of the same project, written by one INSERT … SELECT."""
    engine = create_engine(settings.database_url)
    job = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "insert into job (id, org_id, project_id, spinner_id, spinner_version_id,"
                " spinner_version, status, trigger, metadata_fields, only_new, total, created_at)"
                " select :id, v.org_id, :p, v.spinner_id, v.id, v.version, 'completed', 'manual',"
                " '[]', false, :n, now() from spinner_version v where v.spinner_id = :s"
            ),
            {"id": job, "p": project_id, "s": spinner_id, "n": n},
        )
        await conn.execute(
            text(
                "insert into record (org_id, job_id, project_id, row_id, status, disposition,"
                " metadata, outcomes, attempts, created_at)"
                " select j.org_id, j.id, j.project_id, g,"
                "  case when g % 100 = 0 then 'failed' else 'completed' end,"
                "  case when g % 50 = 0 then 'Retry' when g % 3 = 0 then 'Done' end,"
                "  jsonb_build_object('name', 'Contact ' || g), '{}', 0, now()"
                " from job j, generate_series(1, :n) g where j.id = :id"
            ),
            {"id": job, "n": n},
        )
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.execute(text("vacuum (analyze) record"))
    await engine.dispose()
    return str(job)


async def run_job(c: httpx.AsyncClient, h: dict[str, str], spinner: str, table: str) -> str:
    r = await c.post(f"/api/v1/spinners/{spinner}/run", json={"tableId": table}, headers=h)
    r.raise_for_status()
    return str(r.json()["id"])


async def done_of(c: httpx.AsyncClient, h: dict[str, str], job: str) -> tuple[int, str]:
    j = (await c.get(f"/api/v1/jobs/{job}", headers=h, timeout=60)).json()
    k = j["counts"]
    return k["completed"] + k["failed"] + k["cancelled"], j["status"]


async def remaining(c: httpx.AsyncClient, h: dict[str, str], job: str) -> int:
    j = (await c.get(f"/api/v1/jobs/{job}", headers=h, timeout=60)).json()
    return int(j["counts"]["pending"])


@dataclass
class Window:
    """The background job's records/s over a timed window, and the cores each server took."""

    rate: float
    seconds: float
    cpu_s: dict[str, float]

    @property
    def cores(self) -> dict[str, float]:
        return {k: round(v / self.seconds, 2) for k, v in self.cpu_s.items()}


async def window(
    c: httpx.AsyncClient, h: dict[str, str], job: str, during: Coroutine[Any, Any, Any]
) -> Window:
    d0, _ = await done_of(c, h, job)
    cpu0, t0 = servers_cpu_s(), time.monotonic()
    await during
    elapsed = time.monotonic() - t0
    cpu_s = {k: v - cpu0.get(k, 0.0) for k, v in servers_cpu_s().items()}
    d1, _ = await done_of(c, h, job)
    return Window((d1 - d0) / elapsed, elapsed, cpu_s)


async def run_locust(
    args: argparse.Namespace, users: int, base: str, prefix: Path, env: dict[str, str]
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(max(users // 2, 1)), "-t", f"{args.seconds}s",
        "-H", base, "--csv", str(prefix), "--only-summary", "--exit-code-on-error", "0",
        # The figures are the steady load: counted once every user is spawned, not the first
        # second's burst of new users on an API pool that has yet to open its connections.
        "--reset-stats",
        *(["--tags", *args.only.split(",")] if args.only else []),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await proc.wait()


async def run_burner(cores: float, seconds: float) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.cpu_burner", f"{cores:.3f}", str(seconds)
    )
    await proc.wait()


def children_cpu_s() -> float:
    """CPU seconds of this process's reaped children (the locust runs, once they have ended)."""
    t = os.times()
    return t.children_user + t.children_system


def _server_name(proc: psutil.Process) -> str:
    args = proc.cmdline()
    if "cxgear" in args[:3]:
        # `python -m cxgear api|worker …`: named by its command, not by words in its options.
        return args[args.index("cxgear") + 1]
    line = " ".join(args)
    for name in ("postgres", "temporal", "bao", "weed"):
        if name in line:
            return name
    return proc.name()


def servers_cpu_s() -> dict[str, float]:
    """CPU seconds so far of each server this benchmark started (PostgreSQL with its backends,
    live and ended, Temporal, the worker, the API…), by name."""
    out: dict[str, float] = {}
    for child in psutil.Process().children():
        try:
            t = child.cpu_times()
            total = t.user + t.system + t.children_user + t.children_system
            for sub in child.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    s = sub.cpu_times()
                    total += s.user + s.system
            name = _server_name(child)
        except psutil.Error:
            continue
        out[name] = out.get(name, 0.0) + total
    return out


def locust_stats(prefix: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with open(f"{prefix}_stats.csv") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                continue
            out[row["Name"]] = {
                "requests": int(row["Request Count"]),
                "errors": int(row["Failure Count"]),
                "req_per_s": round(float(row["Requests/s"]), 1),
                "p50_ms": float(row["50%"]),
                "p95_ms": float(row["95%"]),
                "p99_ms": float(row["99%"]),
            }
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", default="20,40,80")
    ap.add_argument("--seconds", type=int, default=60, help="load per user count")
    ap.add_argument("--records", type=int, default=20_000, help="records of the background job")
    ap.add_argument("--background-records", type=int, default=1_000_000)
    ap.add_argument("--idle-seconds", type=int, default=30)
    ap.add_argument(
        "--only",
        default="",
        help="comma list of locust tags (records, journey, job, progress, ingest, me, projects,"
        " webhook): only those requests, to see which one costs the job its rate",
    )
    args = ap.parse_args()
    users = [int(u) for u in args.users.split(",")]
    with tempfile.TemporaryDirectory(prefix="cxgear-load-") as tmp, running_crm() as crm:
        state = Path(tmp)
        with scratch_stack(
            state,
            durable_temporal=True,
            http_allowed_hosts=[crm.allowed],
            task_queue_prefix=f"l{uuid.uuid4().hex[:6]}",
        ) as stack:
            env = env_of(stack.settings)
            port = free_port()
            api = subprocess.Popen(
                [sys.executable, "-m", "cxgear", "api", "--host", "127.0.0.1", "--port", str(port)],
                env={**env, "CXGEAR_PUBLIC_API_URL": f"http://127.0.0.1:{port}"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            worker = subprocess.Popen(
                [sys.executable, "-m", "cxgear", "worker"], env=env, stdout=subprocess.DEVNULL
            )
            api_rss = Sampler(api.pid, tree=False)
            try:
                figures = await measure(args, users, stack.settings, port, crm.allowed, state, env)
                figures["api_peak_rss_mb"] = round(api_rss.peak_rss / 2**20, 1)
                figures["api_rss_mb_end"] = round(
                    psutil.Process(api.pid).memory_info().rss / 2**20, 1
                )
            finally:
                api_rss.stop()
                for proc in (api, worker):
                    proc.terminate()
                    proc.wait(30)
    print(json.dumps(figures))  # noqa: T201 - the benchmark's output is this one JSON line


async def measure(
    args: argparse.Namespace,
    users: list[int],
    settings: Settings,
    port: int,
    crm: str,
    state: Path,
    env: dict[str, str],
) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=600) as c:
        for _ in range(300):
            try:
                if (await c.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        admin = await signup(c)
        h = admin.headers
        p = await project(c, admin)
        table = await make_table(c, admin, project_id=p["id"], csv_text=contacts_csv(args.records))
        inbox = await make_table(c, admin, project_id=p["id"], csv_text=contacts_csv(1), name="in")
        definition = {
            "steps": [
                {"id": "hello", "type": "log", "message": "Calling {{name}}", "next": "tag"},
                {"id": "tag", "type": "tag", "disposition": "Done", "next": "call"},
                {"id": "call", "type": "api_call", "method": "GET", "url": f"http://{crm}/c/1"},
            ]
        }
        spinner = await make_spinner(c, admin, project_id=p["id"], definition=definition)
        big = await load_background(settings, p["id"], spinner["id"], args.background_records)
        key = await api_key(c, admin, scopes=["ingest"])
        job = await run_job(c, h, spinner["id"], table["id"])
        await asyncio.sleep(5)
        rows = (await c.get(f"/api/v1/jobs/{job}/records?limit=200", headers=h)).json()
        lenv = {
            **env,
            "CXB_TOKEN": admin.token,
            "CXB_INGEST_KEY": key,
            "CXB_JOB": job,
            "CXB_BIG_JOB": big,
            "CXB_PROJECT": p["id"],
            "CXB_INBOX": inbox["id"],
            "CXB_RECORDS": ",".join(str(r["id"]) for r in rows["data"]),
        }
        rounds: dict[str, Any] = {}
        for n in users:
            # The job alone; then the load; then a CPU burner taking the cores the load took.
            idle = await window(c, h, job, asyncio.sleep(args.idle_seconds))
            prefix = state / f"locust{n}"
            loc0 = children_cpu_s()
            loaded = await window(c, h, job, run_locust(args, n, base, prefix, lenv))
            api_s, locust_s = loaded.cpu_s.get("api", 0.0), children_cpu_s() - loc0
            # The load's cores: the API, locust, and what the API's queries added to PostgreSQL
            # (its cores under load beyond the job's own, measured while the job ran alone).
            db_cores = max(0.0, loaded.cores.get("postgres", 0.0) - idle.cores.get("postgres", 0.0))
            took = (api_s + locust_s) / loaded.seconds + db_cores
            burned = await window(c, h, job, run_burner(took, args.seconds))
            stats = locust_stats(prefix)
            served = sum(s["requests"] for s in stats.values())
            work = {k: v for k, v in stats.items() if k != FLOOR}
            worst = max(work, key=lambda k: work[k]["p99_ms"], default=None)
            share = loaded.rate / idle.rate if idle.rate else None
            limit = burned.rate / idle.rate if idle.rate else None
            rounds[str(n)] = {
                "total_req_per_s": round(sum(s["req_per_s"] for s in stats.values()), 1),
                "errors": sum(s["errors"] for s in stats.values()),
                "max_p99_ms": work[worst]["p99_ms"] if worst else None,
                "max_p99_endpoint": worst,
                # The same load's p99 for a request that does no work: the limit beside it.
                "floor_p99_ms": stats[FLOOR]["p99_ms"] if FLOOR in stats else None,
                "api_cpu_ms_per_request": round(api_s * 1000 / served, 2) if served else None,
                "locust_cpu_ms_per_request": round(locust_s * 1000 / served, 2) if served else None,
                "load_cores": round(took, 2),
                "load_db_cores": round(db_cores, 2),
                "background_records_per_s": {
                    "idle": round(idle.rate, 1),
                    "under_load": round(loaded.rate, 1),
                    "beside_burner": round(burned.rate, 1),
                },
                "background_share_of_idle": round(share, 2) if share is not None else None,
                # The same cores taken by a process that touches no database, Temporal or API.
                "background_share_beside_burner": round(limit, 2) if limit is not None else None,
                "share_vs_burner": round(share / limit, 2) if share and limit else None,
                "cores_by_server": {
                    "idle": idle.cores,
                    "under_load": loaded.cores,
                    "beside_burner": burned.cores,
                },
                "endpoints": stats,
            }
            if await remaining(c, h, job) < args.records // 4:
                raise SystemExit("the background job nearly ran out: pass a larger --records")
    at40, at80 = rounds.get("40"), rounds.get("80")
    return {
        "benchmark": "load",
        "seconds_per_round": args.seconds,
        "only": args.only or "all",
        "background_records_in_db": args.background_records,
        "background_job_records": args.records,
        "rounds": rounds,
        "targets": TARGETS,
        "meets_targets": None
        if at40 is None or at80 is None
        else (
            at40["max_p99_ms"] <= TARGETS["p99_ms_at_40"]
            and at80["errors"] == TARGETS["errors_at_80"]
            and (at40["background_share_of_idle"] or 0) >= TARGETS["background_share_at_40"]
        ),
    }


if __name__ == "__main__":
    asyncio.run(main())
