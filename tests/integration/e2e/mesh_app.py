"""A tiny real app for the end-to-end mesh test, run as its own process (so it can be
SIGKILLed): ``python mesh_app.py NAME HOST PORT [UPSTREAM_ADDR]``.

``GET /healthz`` answers 200. Any other GET answers JSON ``{"app": NAME}``; with
``UPSTREAM_ADDR`` (HOST:PORT, a dependency's stable local address from ``gossamer agent
env``) it first calls ``http://UPSTREAM_ADDR/hello`` and adds the answer as ``upstream``
(502 with the error if that call fails). Standard library only.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: no proxy from the environment: the dependency is on loopback
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _handler(name: str, upstream: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body: dict[str, Any] = {"app": name, "path": self.path}
            status = 200
            if self.path != "/healthz" and upstream is not None:
                try:
                    with OPENER.open(f"http://{upstream}/hello", timeout=10) as r:
                        body["upstream"] = json.loads(r.read())
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    status, body["error"] = 502, f"calling {upstream}: {exc}"
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(argv: list[str]) -> None:
    name, host, port = argv[0], argv[1], int(argv[2])
    upstream = argv[3] if len(argv) > 3 else None
    server = ThreadingHTTPServer((host, port), _handler(name, upstream))
    server.daemon_threads = True
    print(f"{name} serving on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
