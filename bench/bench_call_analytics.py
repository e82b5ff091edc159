"""Call analytics answer time with 100k analysed calls in one call_analyzer project.

The app runs in process (ASGI, no network), so a request's time is the server's: the SQL
roll-ups over `analysed_call` and the JSON. The calls are written with one INSERT … SELECT
(generate_series) spread over the last 90 days, 20 agents, a few tags each, every band, then
VACUUM ANALYZE as autovacuum would. Prints one JSON line: p50/p95 ms per endpoint over
`--repeat` requests and whether every p95 is under the issue's bar (200 ms); the console's
call pages over the same data are timed too, against the console's 300 ms bar.
Usage: python -m bench.bench_call_analytics [--calls 100000] [--repeat 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from api.app import create_app
from bench.bench_console import time_pages
from cxgear.stack.scratch import scratch_stack
from infra.settings import Settings
from tests.builders import project, signup

BAR_MS = 200.0
PAGE_BAR_MS = 300.0  # the console's bar for a page rendered server-side

# percent cycles through 0..99 so every band is present; tags vary with the call number.
CALLS_SQL = text(
    """
insert into analysed_call (
  org_id, project_id, record_id, call_id, agent, direction, started_at, duration_s,
  occurred_at, transcript, tags, hit_tags, score, max_score, percent, band,
  final_score, final_percent, final_band, score_detail, summary, analysed_at)
select :org, :project, :base + g, 'call-' || g, 'agent-' || (g % 20),
  case when g % 3 = 0 then 'outbound' else 'inbound' end, t, 60 + g % 600, t,
  jsonb_build_array(
    jsonb_build_object('speaker', 0, 'start', 0, 'end', 3, 'confidence', 0.9,
                       'text', 'Thank you for calling, how can I help?'),
    jsonb_build_object('speaker', 1, 'start', 3, 'end', 8, 'confidence', 0.9,
                       'text', 'My card was declined again.')),
  jsonb_build_object('greeting', jsonb_build_object('hit', g % 2 = 0, 'evidence', '[]'::jsonb)),
  (array['greeting','apology','declined','escalation','refund','upsell','churn_risk'])
    [1 + g % 7 : 1 + g % 7 + g % 3],
  g % 100, 100, (g % 100)::float,
  case when g % 100 >= 80 then 'good' when g % 100 >= 60 then 'fair' else 'poor' end,
  g % 100, (g % 100)::float,
  case when g % 100 >= 80 then 'good' when g % 100 >= 60 then 'fair' else 'poor' end,
  '{}'::jsonb, 'A generated call.', t
from generate_series(1, :n) g,
  lateral (select now() - (g % (90 * 24 * 60)) * interval '1 minute' as t) w
"""
)


async def load_calls(app: Any, org_id: str, project_id: str, n: int) -> float:
    start = time.perf_counter()
    async with app.state.engine.begin() as conn:
        await conn.execute(
            CALLS_SQL,
            {"org": uuid.UUID(org_id), "project": uuid.UUID(project_id), "base": 10**12, "n": n},
        )
    async with app.state.engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.execute(text("vacuum (analyze) analysed_call"))
    return time.perf_counter() - start


async def measure(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
            admin = await signup(c)
            p = await project(c, admin, type="call_analyzer")
            load_s = await load_calls(app, admin.org_id, p["id"], args.calls)
            pid = p["id"]
            endpoints = {
                "project_7d": f"/api/v1/projects/{pid}/call-analytics?days=7",
                "project_30d": f"/api/v1/projects/{pid}/call-analytics?days=30",
                "project_90d": f"/api/v1/projects/{pid}/call-analytics?days=90",
                "org_90d": "/api/v1/call-analytics?days=90",
                "list_tag_band": f"/api/v1/projects/{pid}/analysed-calls?tag=refund&band=good",
                "list_agent": f"/api/v1/projects/{pid}/analysed-calls?agent=agent-7",
            }
            one_call = await c.get(f"{endpoints['list_agent']}&limit=1", headers=admin.headers)
            # The console's pages over the same data, as a signed-in browser (300 ms bar).
            pages = {
                "page_analytics_90d": f"/projects/{pid}/calls/analytics?days=90",
                "page_calls": f"/projects/{pid}/calls",
                "page_calls_tag_band": f"/projects/{pid}/calls?tag=refund&band=good",
                "page_call": f"/calls/{one_call.json()['data'][0]['id']}",
            }
            c.cookies.set("cxgear_session", admin.token)
            figures = await time_pages(c, {**endpoints, **pages}, args.repeat, admin.headers)
            calls_90d = first_calls = (
                await c.get(endpoints["project_90d"], headers=admin.headers)
            ).json()["calls"]
            assert first_calls > 0
    api = {k: v for k, v in figures.items() if not k.startswith("page_")}
    worst = max(api.items(), key=lambda kv: kv[1]["p95_ms"])
    worst_page = max(
        ((k, v) for k, v in figures.items() if k.startswith("page_")),
        key=lambda kv: kv[1]["p95_ms"],
    )
    return {
        "calls": args.calls,
        "calls_in_90d": calls_90d,
        "load_s": round(load_s, 1),
        "repeat": args.repeat,
        "endpoints": figures,
        "worst": worst[0],
        "worst_p95_ms": worst[1]["p95_ms"],
        "bar_ms": BAR_MS,
        "all_under_bar": worst[1]["p95_ms"] < BAR_MS,
        "worst_page": worst_page[0],
        "worst_page_p95_ms": worst_page[1]["p95_ms"],
        "page_bar_ms": PAGE_BAR_MS,
        "pages_under_bar": worst_page[1]["p95_ms"] < PAGE_BAR_MS,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cxgear-calls-") as tmp:
        with scratch_stack(
            Path(tmp), durable_temporal=False, task_queue_prefix=f"c{uuid.uuid4().hex[:6]}"
        ) as stack:
            figures = asyncio.run(measure(stack.settings, args))
    print(json.dumps(figures))  # noqa: T201 - the benchmark's output is this one JSON line


if __name__ == "__main__":
    main()
