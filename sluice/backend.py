"""The demo backends: tiny HTTP servers that say which version they are.

Every answer names the version in the body (``reviews-v2``) and in an ``x-version`` header.
A fault setting (error rate, added latency) can be changed while it runs::

    curl -X PUT 'http://127.0.0.1:PORT/_fault?errorRate=0.2&latencyMs=100'
    curl http://127.0.0.1:PORT/_fault

Run one alone with ``python -m sluice.backend --name reviews-v2 --port 9082``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

__all__ = ["Backend", "Fault"]


@dataclass
class Fault:
    """What a backend does wrong: answer 5xx with ``error_rate``, add ``latency_ms`` to each reply."""

    error_rate: float = 0.0
    latency_ms: float = 0.0

    def as_json(self) -> dict[str, float]:
        return {"errorRate": self.error_rate, "latencyMs": self.latency_ms}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this each answer waits ~40 ms for an ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the demo prints its own tables."""

    def _send(self, status: int, body: str, content_type: str = "text/plain") -> None:
        payload = body.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("x-version", self.server.version_name)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/_fault":
            self._send(200, json.dumps(self.server.fault.as_json()), "application/json")
            return
        if url.path == "/_health":
            self._send(200, "ok\n")
            return
        fault = self.server.fault
        if fault.latency_ms > 0:
            time.sleep(fault.latency_ms / 1000)
        with self.server.lock:
            self.server.requests += 1
        if fault.error_rate > 0 and random.random() < fault.error_rate:
            self._send(503, f"{self.server.version_name} failed (injected fault)\n")
            return
        self._send(200, f"{self.server.version_name}\n")

    def do_PUT(self) -> None:
        url = urlparse(self.path)
        if url.path != "/_fault":
            self._send(404, "not found\n")
            return
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            error_rate = float(query.get("errorRate", self.server.fault.error_rate))
            latency_ms = float(query.get("latencyMs", self.server.fault.latency_ms))
            if not 0 <= error_rate <= 1 or latency_ms < 0:
                raise ValueError
        except ValueError:
            self._send(400, "errorRate must be 0..1 and latencyMs >= 0\n")
            return
        self.server.fault = Fault(error_rate, latency_ms)
        self._send(200, json.dumps(self.server.fault.as_json()), "application/json")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    version_name: str
    fault: Fault
    lock: threading.Lock
    requests: int

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-answer (a killed sampler) is not worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Backend:
    """One demo backend on 127.0.0.1, served from a background thread."""

    def __init__(self, name: str, port: int = 0, fault: Fault | None = None) -> None:
        self.name = name
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.version_name = name
        self._server.fault = fault or Fault()
        self._server.lock = threading.Lock()
        self._server.requests = 0
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"backend-{name}", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        """How many (non-control) requests it has answered."""
        return self._server.requests

    def set_fault(self, fault: Fault) -> None:
        self._server.fault = fault

    def start(self) -> Backend:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A demo backend that names its version.")
    parser.add_argument("--name", required=True, help="version name, e.g. reviews-v2")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    backend = Backend(args.name, args.port, Fault(args.error_rate, args.latency_ms)).start()
    print(f"{args.name} listening on {backend.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        backend.stop()


if __name__ == "__main__":
    main()
