"""A tiny real app that calls its dependency with what it got, run as its own process:
``python relay_app.py NAME HOST PORT UPSTREAM_ADDR``.

``GET /healthz`` answers 200. Any other GET is sent on as ``GET http://UPSTREAM_ADDR<path>``
with the request's headers (but hop-by-hop ones and ``Host``: so a header a caller forged
reaches the next sidecar too), and the upstream's status and body come back as they are
(502 if the call fails). Standard library only.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: no proxy from the environment: the dependency is on loopback
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}


def _handler(upstream: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, payload = 200, b"{}"
            if self.path != "/healthz":
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                request = urllib.request.Request(f"http://{upstream}{self.path}", headers=headers)
                try:
                    with OPENER.open(request, timeout=10) as r:
                        status, payload = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, payload = e.code, e.read()
                except (urllib.error.URLError, OSError) as e:
                    status, payload = 502, f"calling {upstream}: {e}".encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(argv: list[str]) -> None:
    name, host, port, upstream = argv[0], argv[1], int(argv[2]), argv[3]
    server = ThreadingHTTPServer((host, port), _handler(upstream))
    server.daemon_threads = True
    print(f"{name} serving on {host}:{port}, calling {upstream}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
