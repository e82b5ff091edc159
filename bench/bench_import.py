"""CSV import and ingest benchmark on an embedded PostgreSQL; prints one JSON line.

Ours: a generated CSV (default 1,000,000 rows × 12 columns: names, E.164 phones, emails, amounts,
free text with quotes, commas and some line breaks) streamed to the real HTTP import endpoint of
an API run by uvicorn in its own process, whose peak RSS is sampled throughout the run.
Limit, in the same run: the same rows, already in COPY text format (prepared before the clock
starts), streamed by psycopg with ``COPY … FROM STDIN`` into an equivalent table (``LIKE data_row
INCLUDING ALL`` plus the same foreign key) in one transaction — PostgreSQL's own ingest rate,
with no CSV parsing or JSON encoding on the clock.
Ingest: 4 concurrent clients posting 500-record batches to the organization-key endpoint, then
to the table's webhook.

Usage: python -m bench.bench_import [--rows 1000000] [--ingest-batches 40]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from api.services.csv_import.copy_format import copy_text, row_template
from cxgear.migrate import migrate
from cxgear.stack.ports import free_port
from cxgear.stack.postgres import EmbeddedPostgres
from infra.db import libpq_url

TARGET_RATIO = 0.7
TARGET_RSS_MB = 300
TARGET_INGEST = 5000
CLIENTS = 4
BATCH = 500
CHUNK = 1024 * 1024
PASSWORD = "Correct-Horse-9-battery"
COLUMNS = [
    "customer_id",
    "first_name",
    "last_name",
    "phone",
    "email",
    "amount",
    "currency",
    "city",
    "country",
    "signup_date",
    "status",
    "notes",
]
FIRST = ["Ada", "Bruno", "Chloé", "Dmitri", "Eve", "Fatima", "Giorgos", "Hana", "Ígor", "Jun"]
LAST = ["O'Neil", "Smith", "Müller", "García", "Nguyen", "Kowalski", "Dubois", "Rossi"]
CITIES = [("Paris", "FR"), ("Lyon", "FR"), ("Berlin", "DE"), ("Madrid", "ES"), ("Austin", "US")]
NOTES = [
    'Said "call me back after 5pm", prefers SMS',
    "Asked about pricing, discounts, and the annual plan",
    'Left a voicemail: "not interested, thanks"',
    "Wants a callback; spoke with O'Brien,\nfollow up next week",
    "No answer",
    "Upgraded to Pro — very happy, said “great service”",
]


class Sampler:
    """Polls a process's resident set size until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
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
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def generate_csv(path: Path, rows: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            city, country = rng.choice(CITIES)
            writer.writerow(
                [
                    f"C{i:08d}",
                    first,
                    last,
                    f"+1{rng.randrange(200, 999)}{rng.randrange(10**7):07d}",
                    f"{first.lower()}.{i}@example.com",
                    f"{rng.randrange(1, 10**6) / 100:.2f}",
                    "EUR" if country != "US" else "USD",
                    city,
                    country,
                    f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                    rng.choice(("active", "lead", "churned")),
                    f"{rng.choice(NOTES)} (#{i})",
                ]
            )
    return path.stat().st_size


def checkpoint(conninfo: str) -> None:
    """Start each timed phase with clean shared buffers, so one phase's writes don't bill the other."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            yield block


def start_api(database_url: str, port: int, app: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CXGEAR_ENVIRONMENT": "test",
        "CXGEAR_DATABASE_URL": database_url,
        "CXGEAR_SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
        "CXGEAR_PUBLIC_API_URL": f"http://127.0.0.1:{port}",
    }
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--log-level", "warning", "--no-access-log"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"API exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("API did not start within 60 s")


def ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:500]}")
    return response.json()


def setup(api: httpx.Client) -> tuple[dict[str, str], str]:
    body = ok(
        api.post(
            "/api/v1/auth/signup",
            json={
                "fullName": "Bench Admin",
                "organizationName": "Bench",
                "email": f"bench-{uuid.uuid4().hex[:8]}@example.com",
                "password": PASSWORD,
            },
        )
    )
    headers = {"Authorization": f"Bearer {body['token']}"}
    project = ok(
        api.post("/api/v1/projects", json={"name": "bench", "type": "outreach"}, headers=headers)
    )
    return headers, str(project["id"])


def http_import(
    api: httpx.Client, headers: dict[str, str], table_id: str, path: Path
) -> tuple[int, float]:
    started = time.perf_counter()
    result = ok(
        api.post(
            f"/api/v1/data-tables/{table_id}/import",
            content=file_chunks(path),
            headers={
                **headers,
                "Content-Type": "text/csv",
                "Content-Length": str(path.stat().st_size),
            },
            timeout=httpx.Timeout(600),
        )
    )
    return int(result["inserted"]), time.perf_counter() - started


def raw_copy(conninfo: str, csv_path: Path, work: Path) -> tuple[int, float]:
    """PostgreSQL's ingest rate for the same rows into an equivalent table (the limit)."""
    table_id = uuid.uuid4()
    prepared = work / "rows.copy"
    rows = 0
    with csv_path.open(newline="", encoding="utf-8") as src, prepared.open("wb") as out:
        reader = csv.reader(src)
        template = row_template(table_id, next(reader))
        batch: list[str] = []
        for row in reader:
            batch.append(template % tuple(map(encode_basestring, row)))
            if len(batch) == 5000:
                out.write(copy_text(batch))
                rows += len(batch)
                batch.clear()
        if batch:
            out.write(copy_text(batch))
            rows += len(batch)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy_row")
        conn.execute("CREATE TABLE bench_copy_row (LIKE data_row INCLUDING ALL)")
        conn.execute(
            "ALTER TABLE bench_copy_row ADD FOREIGN KEY (table_id)"
            " REFERENCES data_table (id) ON DELETE CASCADE"
        )
        org, project = conn.execute("SELECT org_id, project_id FROM data_table LIMIT 1").fetchone()  # type: ignore[misc]
        conn.execute(
            "INSERT INTO data_table (id, org_id, project_id, name, columns, metadata_fields,"
            " row_count, created_at, updated_at)"
            " VALUES (%s, %s, %s, 'raw copy', '[]', '[]', 0, now(), now())",
            (table_id, org, project),
        )
    checkpoint(conninfo)
    with psycopg.connect(conninfo) as conn:
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY bench_copy_row (table_id, data) FROM STDIN") as copy,
        ):
            for block in file_chunks(prepared):
                copy.write(block)
        conn.commit()
        elapsed = time.perf_counter() - started
    prepared.unlink()
    return rows, elapsed


def ingest_bodies(table_id: str | None, batches: int) -> list[bytes]:
    rng = random.Random(11)
    bodies = []
    for b in range(batches):
        records = [
            {
                "customer_id": f"I{b:04d}{i:04d}",
                "first_name": rng.choice(FIRST),
                "last_name": rng.choice(LAST),
                "phone": f"+1415{rng.randrange(10**7):07d}",
                "email": f"ingest.{b}.{i}@example.com",
                "amount": f"{rng.randrange(1, 10**5) / 100:.2f}",
                "currency": "EUR",
                "city": "Paris",
                "country": "FR",
                "signup_date": "2024-06-01",
                "status": "lead",
                "notes": rng.choice(NOTES),
            }
            for i in range(BATCH)
        ]
        body: dict[str, Any] = {"records": records}
        if table_id is not None:
            body["dataTableId"] = table_id
        bodies.append(json.dumps(body).encode())
    return bodies


def concurrent_ingest(base: str, path: str, headers: dict[str, str], bodies: list[bytes]) -> float:
    """rows/s for CLIENTS clients sharing the bodies, each on its own keep-alive connection."""
    shares = [bodies[i::CLIENTS] for i in range(CLIENTS)]

    def client(share: list[bytes]) -> int:
        sent = 0
        with httpx.Client(base_url=base, timeout=60) as http:
            for body in share:
                result = ok(
                    http.post(
                        path, content=body, headers={**headers, "Content-Type": "application/json"}
                    )
                )
                sent += int(result["inserted"])
        return sent

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        total = sum(pool.map(client, shares))
    return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--ingest-batches", type=int, default=40, help="500-record batches per endpoint"
    )
    parser.add_argument("--app", default="api.app:app", help="ASGI app for uvicorn")
    parser.add_argument("--fast", action="store_true", help="run PostgreSQL without fsync")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cxgear-bench-import-") as tmp:
        work = Path(tmp)
        pg = EmbeddedPostgres(work / "pg", free_port(), database="bench", fast=args.fast)
        pg.start()
        api_proc: subprocess.Popen[bytes] | None = None
        try:
            migrate(pg.url)
            csv_path = work / "contacts.csv"
            size = generate_csv(csv_path, args.rows)
            port = free_port()
            api_proc = start_api(pg.url, port, args.app, work / "api.log")
            sampler = Sampler(api_proc.pid)
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=60) as api:
                headers, project_id = setup(api)
                table = ok(
                    api.post(
                        f"/api/v1/projects/{project_id}/data-tables",
                        json={"name": "contacts"},
                        headers=headers,
                    )
                )
                idle_rss = psutil.Process(api_proc.pid).memory_info().rss
                checkpoint(libpq_url(pg.url))
                inserted, import_s = http_import(api, headers, table["id"], csv_path)
                import_peak = sampler.peak_rss
                copied, copy_s = raw_copy(libpq_url(pg.url), csv_path, work)
                key = ok(
                    api.post(
                        "/api/v1/api-keys",
                        json={"name": "bench", "scopes": ["ingest"]},
                        headers=headers,
                    )
                )
                token = ok(
                    api.post(f"/api/v1/data-tables/{table['id']}/ingest-token", headers=headers)
                )
            key_rate = concurrent_ingest(
                base,
                "/api/v1/public/ingest",
                {"Authorization": f"Bearer {key['secret']}"},
                ingest_bodies(table["id"], args.ingest_batches),
            )
            webhook_rate = concurrent_ingest(
                base,
                f"/api/v1/public/data-tables/ingest/{token['token']}",
                {},
                ingest_bodies(None, args.ingest_batches),
            )
            sampler.stop()
        finally:
            if api_proc is not None:
                api_proc.terminate()
                api_proc.wait(30)
            pg.stop()

    rows_per_s = inserted / import_s
    copy_rows_per_s = copied / copy_s
    ratio = rows_per_s / copy_rows_per_s
    peak_mb = sampler.peak_rss / 2**20
    ingest_rate = min(key_rate, webhook_rate)
    print(
        json.dumps(
            {
                "rows": inserted,
                "columns": len(COLUMNS),
                "file_mb": round(size / 2**20, 1),
                "import_s": round(import_s, 2),
                "rows_per_s": round(rows_per_s),
                "copy_rows_per_s": round(copy_rows_per_s),
                "ratio": round(ratio, 3),
                "api_idle_rss_mb": round(idle_rss / 2**20, 1),
                "api_import_peak_rss_mb": round(import_peak / 2**20, 1),
                "api_peak_rss_mb": round(peak_mb, 1),
                "ingest_rows_per_s": round(key_rate),
                "webhook_ingest_rows_per_s": round(webhook_rate),
                "ingest_clients": CLIENTS,
                "ingest_batch": BATCH,
                "targets": {
                    "ratio": TARGET_RATIO,
                    "api_peak_rss_mb": TARGET_RSS_MB,
                    "ingest_rows_per_s": TARGET_INGEST,
                },
                "met": {
                    "ratio": ratio >= TARGET_RATIO,
                    "api_peak_rss_mb": peak_mb <= TARGET_RSS_MB,
                    "ingest_rows_per_s": ingest_rate >= TARGET_INGEST,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
