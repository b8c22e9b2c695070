"""A real webhook receiver on 127.0.0.1 for notification tests: it records every POST and can
fail the first few, or hang until it is stopped (a receiver that never answers)."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Delivery", "WebhookReceiver", "webhook_receiver"]


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver got, and the status it answered (None: it hung)."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int | None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: WebhookReceiver

    def do_POST(self) -> None:
        server = self.server
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        headers = {name.lower(): value for name, value in self.headers.items()}
        with server.lock:
            status = server.failures.pop(0) if server.failures else 200
            if server.hang:
                server.deliveries.append(Delivery(self.path, headers, body, None))
            else:
                server.deliveries.append(Delivery(self.path, headers, body, status))
        if server.hang:
            server.stopping.wait()  # never answers while the test runs
            return
        answer = b"ok" if status < 300 else b"try again later"
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


class WebhookReceiver(ThreadingHTTPServer):
    """Answers POSTs with the statuses in ``failures`` first (one per request), then 200; with
    ``hang``, never answers until :meth:`stop`. ``url`` holds a secret-looking path, as a Slack
    incoming-webhook URL does, so tests can search the history for it."""

    daemon_threads = True

    def __init__(self, failures: list[int] | None = None, hang: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures = list(failures or [])
        self.hang = hang
        self.secret = f"T{secrets.token_hex(4)}/B{secrets.token_hex(4)}/{secrets.token_urlsafe(18)}"
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.deliveries: list[Delivery] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/services/{self.secret}"

    def received(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)

    def accepted(self) -> list[Delivery]:
        """The deliveries it answered with a 2xx."""
        return [d for d in self.received() if d.status is not None and 200 <= d.status < 300]

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


@contextmanager
def webhook_receiver(failures: list[int] | None = None, hang: bool = False) -> Iterator[WebhookReceiver]:
    """A :class:`WebhookReceiver`, stopped on exit."""
    receiver = WebhookReceiver(failures, hang)
    try:
        yield receiver
    finally:
        receiver.stop()
