"""Call intake benchmark on the embedded stack; prints one JSON line.

Ours: a call_analyzer project's seeded "Call intake" spinner (transcribe → apply_tags → qa_score
→ summarize → tag) over N calls, recordings (generated WAVs) at plain URLs of a loopback file
server, the Deepgram and OpenAI fakes answering through their real SDKs, one GenAI tag group.
Limit: bench.baseline's parent/child workflows with as many no-op activities per child as the
intake runs per call. Usage: python -m bench.bench_calls [--records 1000] [--rounds N]

`--rounds N` alternates the limit and ours N times, each on a fresh stack (like bench_engine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from httpx import ASGITransport, AsyncClient

from api.app import create_app
from bench.bench_engine import Sampler, baseline, spread
from cxgear.stack.scratch import scratch_stack
from infra.settings import Settings
from tests.builders import signup
from tests.calls_builders import tone_wav
from tests.fakes.deepgram_api import FakeDeepgram, running_deepgram
from tests.fakes.openai_api import FakeOpenAI, running_openai
from tests.fakes.signed import FAKE_HOST, Ledger, serve
from tests.workflows.test_calls_intake import TAGS, conversation, model
from tests.workflows.test_calls_pipeline import FileServer

log = logging.getLogger("bench.calls")
# transcribe, apply_tags, qa_score, summarize and the tag step: one activity each per call.
INTAKE_ACTIVITIES = 5
CARD: dict[str, Any] = {
    "name": "QA",
    "questions": [
        {"id": "sorry", "text": "Apologised", "points": 40, "condition": "apology"},
        {"id": "fix", "text": "Fixed it", "points": 60, "condition": "resolved"},
    ],
}


@contextmanager
def fakes() -> Iterator[tuple[FileServer, FakeDeepgram, FakeOpenAI]]:
    files = FileServer()
    with serve(files.handle, Ledger()) as (_, port), running_deepgram() as dg:
        files.port = port
        with running_openai() as ai:
            ai.responder = model
            yield files, dg, ai


async def ours(
    settings: Settings,
    pids: dict[str, int],
    records: int,
    files: FileServer,
    dg: FakeDeepgram,
    ai: FakeOpenAI,
) -> dict[str, Any]:
    env = {
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
        "CXGEAR_PROVIDER_ALLOWED_HOSTS": json.dumps(settings.provider_allowed_hosts),
        "CXGEAR_ENVIRONMENT": "test",
    }
    for i in range(records):
        audio = tone_wav(100 + i, 0.1)
        dg.answer(audio, conversation(i))
        files.files[f"c{i}.wav"] = audio
    worker = subprocess.Popen(
        [sys.executable, "-m", "cxgear", "worker"], env=env, stdout=subprocess.DEVNULL
    )
    wsample, tsample = Sampler(worker.pid), Sampler(pids["temporal"])
    app = create_app(settings)
    try:
        async with (
            app.router.lifespan_context(app),
            AsyncClient(
                transport=ASGITransport(app=app), base_url="http://bench", timeout=600
            ) as c,
        ):
            admin = await signup(c)
            h = admin.headers
            p = (
                await c.post(
                    "/api/v1/projects", json={"name": "Bench", "type": "call_analyzer"}, headers=h
                )
            ).json()
            ids = {}
            for kind, body in {
                "stt": {"kind": "deepgram", "config": dg.config, "credentials": dg.creds},
                "llm": {"kind": "openai", "config": ai.config, "credentials": ai.creds},
                "storage": {"kind": "https", "config": {}},
            }.items():
                r = await c.post(
                    "/api/v1/integrations", json={"name": f"{kind} bench", **body}, headers=h
                )
                assert r.status_code == 201, r.text
                ids[kind] = r.json()["id"]
            for tag in TAGS:
                r = await c.post(f"/api/v1/projects/{p['id']}/call-tags", json=tag, headers=h)
                assert r.status_code == 201, r.text
            r = await c.post(f"/api/v1/projects/{p['id']}/scorecards", json=CARD, headers=h)
            assert r.status_code == 201, r.text
            r = await c.put(
                f"/api/v1/projects/{p['id']}/call-setup",
                json={f"{k}IntegrationId": v for k, v in ids.items()},
                headers=h,
            )
            assert r.json()["complete"], r.text
            table = (await c.get(f"/api/v1/projects/{p['id']}/data-tables", headers=h)).json()
            spinner = (await c.get(f"/api/v1/projects/{p['id']}/spinners", headers=h)).json()
            table_id, spinner_id = table["data"][0]["id"], spinner["data"][0]["id"]
            rows = "\n".join(
                f"{files.url(f'c{i}.wav')},c{i},agent{i % 7},inbound,,60" for i in range(records)
            )
            csv_text = "recording_url,call_id,agent,direction,started_at,duration_s\n" + rows
            r = await c.post(
                f"/api/v1/data-tables/{table_id}/append",
                files={"file": ("rows.csv", (csv_text + "\n").encode(), "text/csv")},
                headers=h,
            )
            assert r.status_code in (200, 201), r.text
            await asyncio.sleep(2)  # let the worker connect before the clock starts
            w0, t0 = wsample.cpu_ms(), tsample.cpu_ms()
            start = time.monotonic()
            r = await c.post(
                f"/api/v1/spinners/{spinner_id}/run", json={"tableId": table_id}, headers=h
            )
            job_id = r.json()["id"]
            while True:
                job = (await c.get(f"/api/v1/jobs/{job_id}", headers=h)).json()
                if job["status"] in ("completed", "partial", "failed", "cancelled"):
                    break
                await asyncio.sleep(0.5)
            elapsed = time.monotonic() - start
            w1, t1 = wsample.cpu_ms(), tsample.cpu_ms()
            analysed = (
                await c.get(f"/api/v1/projects/{p['id']}/call-analytics?days=90", headers=h)
            ).json()["calls"]
        return {
            "calls": records,
            "status": job["status"],
            "completed": job["counts"]["completed"],
            "analysed_calls": analysed,
            "seconds": round(elapsed, 2),
            "calls_per_s": round(records / elapsed, 2),
            "worker_cpu_ms_per_call": round((w1 - w0) / records, 2),
            "temporal_cpu_ms_per_call": round((t1 - t0) / records, 2),
            "worker_peak_rss_mb": round(wsample.peak_rss / 2**20, 1),
            "worker_peak_rss_kb_per_call": round(wsample.peak_rss / 1024 / records, 1),
        }
    finally:
        wsample.stop()
        tsample.stop()
        worker.terminate()
        worker.wait(30)


async def fresh_round(records: int, *, side: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cxgear-bench-") as tmp, fakes() as (files, dg, ai):
        with scratch_stack(
            Path(tmp),
            durable_temporal=True,
            http_allowed_hosts=[f"{FAKE_HOST}:{files.port}"],
            provider_allowed_hosts=[FAKE_HOST],
            task_queue_prefix=f"b{uuid.uuid4().hex[:6]}",
        ) as stack:
            assert stack.temporal.process is not None
            temporal_pid = stack.temporal.process.pid
            if side == "baseline":
                base = await baseline(
                    stack.settings, temporal_pid, records, activities=INTAKE_ACTIVITIES
                )
                base["calls_per_s"] = base["records_per_s"]
                return base
            return await ours(stack.settings, {"temporal": temporal_pid}, records, files, dg, ai)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    pairs = []
    for n in range(args.rounds):
        base = await fresh_round(args.records, side="baseline")
        mine = await fresh_round(args.records, side="ours")
        log.info("round %d: limit %s calls/s, ours %s", n + 1, base["calls_per_s"], mine)
        pairs.append({"baseline": base, "ours": mine})
    ratios = [p["ours"]["calls_per_s"] / p["baseline"]["calls_per_s"] for p in pairs]
    figures = {
        "benchmark": "calls_intake",
        "calls": args.records,
        "activities_per_call": INTAKE_ACTIVITIES,
        "rounds": pairs,
        "calls_per_s": spread([p["ours"]["calls_per_s"] for p in pairs]),
        "worker_cpu_ms_per_call": spread([p["ours"]["worker_cpu_ms_per_call"] for p in pairs]),
        "worker_peak_rss_mb": spread([p["ours"]["worker_peak_rss_mb"] for p in pairs]),
        "ratio_ours_over_engine_floor": spread(ratios),
        "all_analysed": all(p["ours"]["analysed_calls"] == args.records for p in pairs),
    }
    print(json.dumps(figures))  # noqa: T201 - the benchmark's output is this one JSON line


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main())
