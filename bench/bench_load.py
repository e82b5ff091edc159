"""Mixed-load benchmark of the API on the embedded stack (loopback only); prints one JSON line.

A job of `--records` records runs in the background while locust (headless, in a subprocess)
drives records pages, journeys, job detail and progress, ingest batches, /auth/me, project
listing and forged Twilio webhooks, with `--background-records` more records in the database.
Each user count runs for `--seconds`; the job's records/s under load is set beside its idle rate.
Usage: python -m bench.bench_load [--users 20,40,80] [--seconds 30] [--records 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
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


async def idle_rate(c: httpx.AsyncClient, h: dict[str, str], job: str, seconds: float) -> float:
    start, (d0, _) = time.monotonic(), await done_of(c, h, job)
    await asyncio.sleep(seconds)
    d1, _ = await done_of(c, h, job)
    return (d1 - d0) / (time.monotonic() - start)


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
    ap.add_argument("--seconds", type=int, default=30, help="load per user count")
    ap.add_argument("--records", type=int, default=1000, help="records of the background job")
    ap.add_argument("--background-records", type=int, default=1_000_000)
    ap.add_argument("--idle-seconds", type=int, default=20)
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
        # Idle: the job alone.
        job = await run_job(c, h, spinner["id"], table["id"])
        await asyncio.sleep(3)
        idle = await idle_rate(c, h, job, args.idle_seconds)
        rounds: dict[str, Any] = {}
        for n in users:
            done, status = await done_of(c, h, job)
            if (
                status in ("completed", "partial", "failed", "cancelled")
                or done > args.records * 0.6
            ):
                job = await run_job(c, h, spinner["id"], table["id"])
                await asyncio.sleep(3)
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
            prefix = state / f"locust{n}"
            d0, _ = await done_of(c, h, job)
            t0 = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                "-u", str(n), "-r", str(max(n // 2, 1)), "-t", f"{args.seconds}s",
                "-H", base, "--csv", str(prefix), "--only-summary", "--exit-code-on-error", "0",
                env=lenv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await proc.wait()
            d1, _ = await done_of(c, h, job)
            rate = (d1 - d0) / (time.monotonic() - t0)
            stats = locust_stats(prefix)
            rounds[str(n)] = {
                "endpoints": stats,
                "total_req_per_s": round(sum(s["req_per_s"] for s in stats.values()), 1),
                "errors": sum(s["errors"] for s in stats.values()),
                "max_p99_ms": max((s["p99_ms"] for s in stats.values()), default=None),
                "background_records_per_s": round(rate, 1),
                "background_share_of_idle": round(rate / idle, 2) if idle else None,
            }
    at40, at80 = rounds.get("40"), rounds.get("80")
    return {
        "benchmark": "load",
        "seconds_per_round": args.seconds,
        "background_records_in_db": args.background_records,
        "background_job_records": args.records,
        "background_idle_records_per_s": round(idle, 1),
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
