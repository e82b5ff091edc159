"""The mixed read/write load of bench_load, for `locust --headless` (ids and tokens from env)."""

from __future__ import annotations

import itertools
import os
import random

from locust import HttpUser, between, tag, task

E = os.environ
HEADERS = {"Authorization": f"Bearer {E.get('CXB_TOKEN', '')}"}
KEY = {"Authorization": f"Bearer {E.get('CXB_INGEST_KEY', '')}"}
FILTERS = ["", "&status=failed", "&status=completed", "&disposition=Retry", "&disposition=Done"]
FLOOR = "floor (healthz)"
_batch = itertools.count()


class Operator(HttpUser):
    wait_time = between(0.5, 1.5)

    @task(4)
    @tag("records")
    def records_page(self) -> None:
        scope = random.choice(
            [f"jobs/{E['CXB_BIG_JOB']}", f"jobs/{E['CXB_JOB']}", f"projects/{E['CXB_PROJECT']}"]
        )
        after = random.choice(["", f"&after={random.randint(1, 900_000)}"])
        self.client.get(
            f"/api/v1/{scope}/records?limit=50{random.choice(FILTERS)}{after}",
            headers=HEADERS,
            name="records page",
        )

    @task(2)
    @tag("journey")
    def journey(self) -> None:
        rid = random.choice(E["CXB_RECORDS"].split(","))
        with self.client.get(
            f"/api/v1/records/{rid}/journey", headers=HEADERS, name="journey", catch_response=True
        ) as r:
            # A record not started yet has no journey: a correct answer, not an error.
            if r.status_code == 409:
                r.success()

    @task(3)
    @tag("job")
    def job_detail(self) -> None:
        self.client.get(f"/api/v1/jobs/{E['CXB_JOB']}", headers=HEADERS, name="job detail")

    @task(3)
    @tag("progress")
    def progress(self) -> None:
        self.client.get(
            f"/api/v1/jobs/{E['CXB_JOB']}/progress", headers=HEADERS, name="job progress"
        )

    @task(1)
    @tag("ingest")
    def ingest(self) -> None:
        n = next(_batch)
        rows = [
            {"name": f"In {n}-{i}", "phone": "+14155550100", "amount": str(i), "tz": "UTC"}
            for i in range(20)
        ]
        self.client.post(
            "/api/v1/public/ingest",
            json={"dataTableId": E["CXB_INBOX"], "records": rows},
            headers=KEY,
            name="ingest batch",
        )

    @task(2)
    @tag("me")
    def me(self) -> None:
        self.client.get("/api/v1/auth/me", headers=HEADERS, name="auth me")

    @task(2)
    @tag("projects")
    def projects(self) -> None:
        self.client.get("/api/v1/projects", headers=HEADERS, name="projects")

    @task(2)
    @tag("floor")
    def floor(self) -> None:
        # No database, session or Temporal: what the machine, the event loop and locust alone
        # add to a request at this load, the limit the other endpoints' p99 is set beside.
        self.client.get("/healthz", name=FLOOR)

    @task(1)
    @tag("webhook")
    def forged_twilio(self) -> None:
        with self.client.post(
            "/api/v1/webhooks/twilio/status",
            data={"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"},
            headers={"X-Twilio-Signature": "forged"},
            name="twilio webhook (bad signature)",
            catch_response=True,
        ) as r:
            if 400 <= r.status_code < 500:
                r.success()
            else:
                r.failure(f"forged signature answered {r.status_code}")
