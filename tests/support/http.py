"""A tiny real HTTP server on 127.0.0.1 that answers one fixed page and records every request.

For tests that must show what the worker sent (a bearer token, a request at all) and what it read
back (a body or header that must not reach the workflow history).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

__all__ = ["PageServer", "page_server", "refuse_network"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PageServer

    def _answer(self) -> None:
        server = self.server
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        with server.lock:
            server.requests.append((self.command, self.path, dict(self.headers.items())))
        body = server.body.encode()
        self.send_response(server.status)
        for name, value in server.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class PageServer(ThreadingHTTPServer):
    """Answers every GET/POST with ``status``, ``headers`` and ``body``; ``requests`` lists
    (method, path, headers) of what it received."""

    daemon_threads = True

    def __init__(self, body: str, status: int = 200, headers: dict[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body = body
        self.status = status
        self.headers = headers or {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


@contextmanager
def page_server(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Iterator[PageServer]:
    """A :class:`PageServer`, stopped on exit."""
    server = PageServer(body, status, headers)
    try:
        yield server
    finally:
        server.stop()


def refuse_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request that reaches httpx's network transports is recorded and fails there, so a
    test can show that a refused request never left the worker (and nothing is sent anywhere)."""
    sent: list[str] = []

    async def refuse_async(self: Any, request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        raise httpx.ConnectError("the test allows no network", request=request)

    def refuse(self: Any, request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        raise httpx.ConnectError("the test allows no network", request=request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", refuse_async)
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", refuse)
    return sent
