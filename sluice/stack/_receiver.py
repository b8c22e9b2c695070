"""A webhook receiver on loopback: what a chat or an event bus would get from ``notify``.

It records every POST and can misbehave as real receivers do, so the tests can prove delivery is
retried and never holds a rollout up: ``failures`` are the statuses it answers first (one per
request), ``hang`` never answers until it stops. Its URL has a secret-looking path, as a Slack
incoming-webhook URL does, so tests can search histories and logs for it. ``on_message`` is
called with each accepted delivery (the demo prints them).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from sluice.stack._processes import LOOPBACK

__all__ = ["Delivery", "WebhookReceiver"]


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver got, and the status it answered (None: it hung)."""

    path: str
    headers: dict[str, str]
    body: Any
    """The JSON body (the raw text when it was not JSON)."""
    status: int | None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        try:
            body: Any = json.loads(raw or "null")
        except ValueError:
            body = raw
        headers = {name.lower(): value for name, value in self.headers.items()}
        with receiver.lock:
            status = None if receiver.hang else (receiver.failures.pop(0) if receiver.failures else 200)
            delivery = Delivery(self.path, headers, body, status)
            receiver.deliveries.append(delivery)
        if status is None:
            receiver.stopping.wait()  # never answers while it runs
            return
        answer = b"ok" if status < 300 else b"try again later"
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        if status < 300 and receiver.on_message is not None:
            receiver.on_message(delivery)

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests and the demo print
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: WebhookReceiver) -> None:
        super().__init__((LOOPBACK, receiver.port), _Handler)
        self.receiver = receiver


class WebhookReceiver:
    """Answers POSTs with the statuses in ``failures`` first, then 200; with ``hang``, never
    answers until :meth:`stop`. Started by :meth:`start` or ``with`` (``port`` 0: a free one)."""

    def __init__(
        self,
        failures: list[int] | None = None,
        hang: bool = False,
        *,
        port: int = 0,
        on_message: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.failures = list(failures or [])
        self.hang = hang
        self.port = port
        self.on_message = on_message
        self.secret = f"T{secrets.token_hex(4)}/B{secrets.token_hex(4)}/{secrets.token_urlsafe(18)}"
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.deliveries: list[Delivery] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/services/{self.secret}"

    def start(self) -> Self:
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # lets hung requests go
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def received(self) -> list[Delivery]:
        """Every POST so far, oldest first (refused and hung ones included)."""
        with self.lock:
            return list(self.deliveries)

    def accepted(self) -> list[Delivery]:
        """The deliveries it answered with a 2xx."""
        return [d for d in self.received() if d.status is not None and 200 <= d.status < 300]
