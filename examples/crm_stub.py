"""A stand-in CRM for the campaign example (standard library only).

    CALLBACK_SECRET=whsec_… python3 examples/crm_stub.py --port 18080 --token crm-demo-token

`POST /leads` with `Authorization: Bearer <token>` and a JSON lead answers
`{"lead": {"id": "L-1", "owner": …}}`; half a second later the CRM "qualifies" the lead and
reports back to the lead's `callback_url` (the spinner sent it as `{{context.callbackUrl}}`)
with a callback signed with the organization's secret (`cxgear callbacks rotate-secret`), as a
real CRM's webhook would. The secret comes from the environment, not the command line, which
other users can read in the process list. `GET /leads` lists what it received (without the
token).
"""

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from callback_signing import send_callback

OWNERS = ("grace", "linus", "margaret")


class CrmHandler(BaseHTTPRequestHandler):
    server: "CrmServer"

    def do_GET(self) -> None:
        if self.path != "/leads":
            return self._answer(404, {"error": "not found"})
        self._answer(200, {"leads": self.server.leads})

    def do_POST(self) -> None:
        if self.path != "/leads":
            return self._answer(404, {"error": "not found"})
        if self.headers.get("authorization") != f"Bearer {self.server.token}":
            return self._answer(401, {"error": "bad token"})
        try:
            lead = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        except ValueError:
            return self._answer(400, {"error": "body must be JSON"})
        lead_id = f"L-{len(self.server.leads) + 1}"
        owner = OWNERS[len(self.server.leads) % len(OWNERS)]
        self.server.leads.append({"id": lead_id, "owner": owner, **lead})
        self._answer(201, {"lead": {"id": lead_id, "owner": owner}})
        if lead.get("callback_url"):
            report = {"status": "qualified", "lead_id": lead_id, "owner": owner}
            threading.Thread(
                target=self.server.call_back, args=(lead["callback_url"], report), daemon=True
            ).start()

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        print(f"crm: {format % args}", flush=True)


class CrmServer(ThreadingHTTPServer):
    def __init__(self, port: int, token: str, callback_secret: str) -> None:
        super().__init__(("127.0.0.1", port), CrmHandler)
        self.token = token
        self.callback_secret = callback_secret
        self.leads: list[dict[str, Any]] = []

    def call_back(self, url: str, report: dict[str, Any]) -> None:
        time.sleep(0.5)
        answer = send_callback(url, self.callback_secret, report)
        print(f"crm: called back {url}: {answer}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--token", required=True, help="the bearer token the CRM accepts")
    args = parser.parse_args()
    secret = os.environ.get("CALLBACK_SECRET", "")
    if not secret.startswith("whsec_"):
        parser.error("set CALLBACK_SECRET to the output of `cxgear callbacks rotate-secret`")
    server = CrmServer(args.port, args.token, secret)
    print(f"crm: listening on http://127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
