"""A webhook receiver for trying the portal's webhooks on one machine (the README's API walk).

    .venv/bin/python scripts/webhook_receiver.py [--port 9000] [--secret whsec_…]

Answers every POST with 204 and prints one line per delivery: its id, its type and, given the
endpoint's signing secret, whether the Standard Webhooks signature holds (a delivery that does
not verify is answered 401, as a real receiver would). The portal only sends to a loopback
address like this one with WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def handler(secret: str | None) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            verdict = "not checked (no --secret)"
            status = 204
            if secret:
                try:
                    Webhook(secret).verify(body, dict(self.headers.items()))
                except WebhookVerificationError:
                    verdict, status = "signature WRONG", 401
                else:
                    verdict = "signature verified"
            try:
                kind = json.loads(body).get("type", "?")
            except ValueError:
                kind = "not JSON"
            print(f"{self.headers.get('webhook-id')} {kind}: {verdict}", flush=True)
            self.send_response(status)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per delivery is enough

    return Receiver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", help="The endpoint's signing secret (whsec_…).")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), handler(args.secret))
    print(f"Receiving webhooks on http://{args.host}:{args.port}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends it quietly
        server.serve_forever()


if __name__ == "__main__":
    main()
