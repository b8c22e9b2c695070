"""The demo backends: tiny HTTP servers that say which version they are, with faults to inject.

Every answer names the version in the body (``reviews-v2``) and in an ``x-version`` header. A
fault setting (a share of 5xx answers, added latency) can be changed while it runs::

    curl -X PUT 'http://127.0.0.1:PORT/_fault?errorRate=0.2&latencyMs=100'
    curl http://127.0.0.1:PORT/_fault

A :class:`Backend` serves from a thread of this process; a :class:`BackendProcess` runs one in
its own process (``python -m sluice.stack --name reviews-v2 --port 9082``), so that its latency
is not the caller's GIL.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, Self
from urllib.parse import parse_qs, urlparse

import httpx

from sluice.stack._processes import LOOPBACK, ManagedProcess, free_port

__all__ = ["Backend", "BackendProcess", "Fault", "Upstream"]


@dataclass
class Fault:
    """What a backend does wrong: answer ``status`` to a share ``error_rate`` of its requests and
    add ``latency_ms`` to every answer.

    The failing requests are random, as in production; ``evenly`` fails exactly every
    ``1/error_rate``-th request instead (every fifth for 0.2), so tests can count exactly.
    """

    error_rate: float = 0.0
    latency_ms: float = 0.0
    status: int = 503
    evenly: bool = False

    def as_json(self) -> dict[str, Any]:
        """The ``/_fault`` form (camelCase, as the query parameters)."""
        return {
            "errorRate": self.error_rate,
            "latencyMs": self.latency_ms,
            "status": self.status,
            "evenly": self.evenly,
        }

    @classmethod
    def from_query(cls, query: dict[str, str], current: Fault) -> Fault:
        """``current`` with the ``/_fault`` query parameters given; ValueError when out of range."""
        fault = cls(
            error_rate=float(query.get("errorRate", current.error_rate)),
            latency_ms=float(query.get("latencyMs", current.latency_ms)),
            status=int(query.get("status", current.status)),
            evenly=query.get("evenly", str(current.evenly)).lower() in ("true", "1"),
        )
        if not 0 <= fault.error_rate <= 1 or fault.latency_ms < 0 or not 500 <= fault.status <= 599:
            raise ValueError(fault)
        return fault

    def fails(self, index: int) -> bool:
        """Whether the ``index``-th request (from 0) gets the error status."""
        if self.evenly:
            # Request i fails when floor((i+1)*rate) steps up: any 1/rate consecutive requests
            # hold exactly one failure.
            return int((index + 1) * self.error_rate + 1e-9) > int(index * self.error_rate + 1e-9)
        return self.error_rate > 0 and random.random() < self.error_rate


class Upstream(Protocol):
    """A backend Envoy routes to: in this process (:class:`Backend`) or its own
    (:class:`BackendProcess`)."""

    name: str

    @property
    def port(self) -> int:
        """Where it listens on 127.0.0.1."""

    def start(self) -> Self:
        """Serve; ready when this returns."""

    def stop(self) -> None:
        """Stop serving (safe to call twice or before :meth:`start`)."""

    def set_fault(self, fault: Fault) -> None:
        """Misbehave like that from now on."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this each answer waits ~40 ms for an ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the demo prints its own tables, tests their own failures."""

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
        with self.server.lock:
            index = self.server.requests
            self.server.requests += 1
        if fault.latency_ms > 0:
            time.sleep(fault.latency_ms / 1000)
        if fault.fails(index):
            self._send(fault.status, f"{self.server.version_name} failed (injected fault)\n")
            return
        self._send(200, f"{self.server.version_name}\n")

    def do_PUT(self) -> None:
        url = urlparse(self.path)
        if url.path != "/_fault":
            self._send(404, "not found\n")
            return
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            self.server.fault = Fault.from_query(query, self.server.fault)
        except ValueError:
            self._send(400, "errorRate must be 0..1, latencyMs >= 0 and status 500..599\n")
            return
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
    """One demo backend on 127.0.0.1 (``port=0``: any free one), served from a background thread."""

    def __init__(self, name: str, port: int = 0, fault: Fault | None = None) -> None:
        self.name = name
        self._server = _Server((LOOPBACK, port), _Handler)
        self._server.version_name = name
        self._server.fault = fault or Fault()
        self._server.lock = threading.Lock()
        self._server.requests = 0
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"backend-{name}", daemon=True
        )
        self._stopped = False

    @property
    def port(self) -> int:
        """Where it listens (bound at construction, so Envoy's clusters can name it first)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Its base URL, without Envoy in front."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def requests(self) -> int:
        """How many (non-control) requests it has answered."""
        return self._server.requests

    @property
    def fault(self) -> Fault:
        """The fault in force; changing its fields changes the next answers."""
        return self._server.fault

    def set_fault(self, fault: Fault) -> None:
        """Misbehave like ``fault`` from the next request on."""
        self._server.fault = fault

    def start(self) -> Self:
        """Serve from a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice or before :meth:`start`."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            # shutdown() waits for serve_forever to end: it would wait forever on one never started.
            self._server.shutdown()
        self._server.server_close()


class BackendProcess(ManagedProcess):
    """One demo backend as a child process (``python -m sluice.stack``), its fault set over HTTP."""

    def __init__(self, state_dir: Path, name: str, port: int | None = None) -> None:
        self._port = port if port is not None else free_port()
        args = [sys.executable, "-m", "sluice.stack", "--name", name, "--port", str(self._port)]
        super().__init__(name, args, state_dir / "logs" / f"{name}.log")

    @property
    def port(self) -> int:
        """Where it listens on 127.0.0.1."""
        return self._port

    @property
    def url(self) -> str:
        """Its base URL, without Envoy in front."""
        return f"http://{LOOPBACK}:{self.port}"

    def ready(self) -> bool:
        """Answers its health check."""
        return httpx.get(f"{self.url}/_health", timeout=1).status_code == 200

    def set_fault(self, fault: Fault) -> None:
        """``PUT /_fault`` with every field of ``fault``."""
        params = {key: str(value).lower() for key, value in fault.as_json().items()}
        httpx.put(f"{self.url}/_fault", params=params, timeout=5).raise_for_status()
