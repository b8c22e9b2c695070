"""A webhook receiver on loopback: what a chat or an event bus would get from ``notify``.

It keeps every request it accepted (method, path, headers, JSON body) and can misbehave as
real receivers do, so the tests can prove delivery is retried and never holds a rollout up:
``fail_first`` answers the first N requests with a 503, ``hang`` never answers until stopped.
``on_message`` is called with each accepted body (the demo prints them).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from sluice.stack._processes import LOOPBACK, free_port

__all__ = ["ReceivedRequest", "WebhookReceiver"]


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the receiver accepted."""

    path: str
    headers: dict[str, str]
    body: Any
    """The JSON body, or the raw text when it was not JSON."""


@dataclass
class WebhookReceiver:
    """A threaded HTTP server taking POSTs on ``127.0.0.1:port``."""

    port: int = 0
    fail_first: int = 0
    """Answer this many requests with 503 before accepting any."""
    hang: bool = False
    """Never answer (the request waits until the receiver stops)."""
    on_message: Callable[[ReceivedRequest], None] | None = None
    accepted: list[ReceivedRequest] = field(default_factory=list)
    attempts: int = 0
    """Every request that arrived, refused and hung ones included."""
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/hook"

    def start(self) -> Self:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                with receiver._lock:
                    receiver.attempts += 1
                    attempt = receiver.attempts
                if receiver.hang:
                    receiver._stopping.wait()
                    return
                if attempt <= receiver.fail_first:
                    self._answer(503, b"try again later")
                    return
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw
                request = ReceivedRequest(self.path, dict(self.headers.items()), body)
                with receiver._lock:
                    receiver.accepted.append(request)
                self._answer(200, b"ok")
                if receiver.on_message is not None:
                    receiver.on_message(request)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and demo print
                return

        self.port = self.port or free_port()
        self._server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # lets hung requests go
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def bodies(self) -> list[Any]:
        """The accepted bodies, oldest first."""
        with self._lock:
            return [request.body for request in self.accepted]
