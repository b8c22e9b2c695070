"""The whole local stack: the data plane, a Temporal dev server and a worker, on loopback.

``sluice dev`` and ``sluice demo`` run it on fixed ports; the end-to-end tests and benchmarks on
free ones. State lives under one directory (``.sluice/`` by default): the dev server's database
file (so a restart resumes rollouts), Envoy's bootstrap and RDS file, and each process's log.
"""

from __future__ import annotations

import asyncio
import errno
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from sluice.stack._backend import Backend
from sluice.stack._envoy import ROUTE_CONFIG_NAME, EnvoyProxy
from sluice.stack._plane import CANARY, STABLE, DataPlane
from sluice.stack._processes import StackError, free_port, port_open
from sluice.stack._temporal import TemporalDevServer, WorkerProcess
from workflows.route_claim import route_claim_id
from workflows.spec import validate_spec

__all__ = ["LocalStack", "StackPorts"]


class _Stoppable(Protocol):
    def stop(self) -> None: ...


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
        """Free loopback ports, and no Temporal UI."""
        return cls(free_port(), None, free_port(), free_port(), free_port(), free_port())


@dataclass
class LocalStack:
    """The whole local stack, started in dependency order and stopped in reverse.

    ``with_prometheus`` and ``load_per_second`` go to the :class:`DataPlane` (the demo's
    analysis reads Prometheus). ``started`` holds what :meth:`stop` stops, last first; a test
    that replaces a process puts the new one there.
    """

    state_dir: Path
    ports: StackPorts = field(default_factory=StackPorts)
    stable_name: str = STABLE
    canary_name: str = CANARY
    task_queue: str = "rollouts"
    with_worker: bool = True
    with_prometheus: bool = False
    load_per_second: float = 0.0
    extra_worker_env: dict[str, str] = field(default_factory=dict)
    """More settings for the stack's worker (the demo's webhook URL and the policy to read it)."""
    started: list[_Stoppable] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.resolve()
        self.temporal = TemporalDevServer(self.state_dir, self.ports.temporal, self.ports.temporal_ui)
        # The backends bind their ports now (the plane lets them go if a binary is missing).
        self.stable = _bind_backend(self.stable_name, self.ports.stable_backend)
        try:
            self.canary = _bind_backend(self.canary_name, self.ports.canary_backend)
        except StackError:
            self.stable.stop()
            raise
        self.plane = DataPlane(
            self.state_dir,
            [self.stable, self.canary],
            listener_port=self.ports.envoy,
            admin_port=self.ports.envoy_admin,
            with_prometheus=self.with_prometheus,
            load_per_second=self.load_per_second,
        )
        self.worker = self.new_worker()

    @property
    def worker_env(self) -> dict[str, str]:
        """What the stack's worker needs beyond the defaults: the directory of Envoy's routes
        file is the one routes directory it manages."""
        return {"SLUICE_ROUTES_DIRS": str(self.envoy.routes_file.parent), **self.extra_worker_env}

    def new_worker(self, log_name: str = "worker.log") -> WorkerProcess:
        """A ``python -m worker`` for this stack (not started)."""
        return WorkerProcess(
            self.state_dir,
            self.temporal.address,
            self.task_queue,
            cwd=Path.cwd(),
            extra_env=self.worker_env,
            log_name=log_name,
        )

    @property
    def envoy(self) -> EnvoyProxy:
        """The data plane's Envoy."""
        return self.plane.envoy

    def start(self, reset_routes: bool = True) -> Self:
        """Start every piece (refusing ports in use); on a failure, stop what started."""
        fixed = (self.ports.temporal, self.ports.temporal_ui, self.ports.envoy, self.ports.envoy_admin)
        for port in fixed:
            if port is not None and port_open(port):
                self.stable.stop()  # bound when the stack was made: let them go
                self.canary.stop()
                raise StackError(port_in_use(port))
        try:
            # Each piece is listed before it starts: one that fails half-way is stopped too.
            self.started.append(self.plane)
            self.plane.start(reset_routes=False, wait_scraped=False)
            self.started.append(self.temporal)
            self.temporal.start()
            if reset_routes:
                self._refuse_reset_under_a_rollout()
                self.plane.write_routes()
            if self.with_worker:
                self.started.append(self.worker)
                self.worker.start()
            # Last: Prometheus scrapes Envoy for the first time while the rest starts.
            self.plane.wait_scraped()
        except BaseException:
            self.stop()
            raise
        return self

    def _refuse_reset_under_a_rollout(self) -> None:
        """Resetting the route while a rollout (kept in the dev server's database) owns it would
        move traffic under it without a word: refuse, naming the owner."""
        spec = validate_spec(self.spec_for())
        claim_id = route_claim_id(spec.route_identity())
        # In a thread of its own: the demo starts the stack from inside its event loop.
        with ThreadPoolExecutor(max_workers=1) as thread:
            owner = thread.submit(asyncio.run, _running_owner(self.temporal.address, claim_id)).result()
        if owner is not None:
            raise StackError(
                f"rollout {owner} is running on {self.envoy.routes_file}; resetting the route would move "
                f"traffic under it. Abort it first (sluice abort {owner}), or start without --fresh"
            )

    def stop(self) -> None:
        """Stop everything started, last first."""
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def port_in_use(port: int) -> str:
    """The one line that says a port the stack needs is taken."""
    return f"port 127.0.0.1:{port} is already in use (another `sluice dev` or `sluice demo`?)"


def _bind_backend(name: str, port: int) -> Backend:
    try:
        return Backend(name, port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise StackError(port_in_use(port)) from None
        raise StackError(f"cannot listen on 127.0.0.1:{port} for {name}: {error.strerror}") from None


async def _running_owner(address: str, claim_id: str) -> str | None:
    """The rollout owning the route claim ``claim_id``, if the claim is running."""
    client = await Client.connect(address)
    try:
        description = await client.get_workflow_handle(claim_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    running = description.status == WorkflowExecutionStatus.RUNNING
    return description.parent_id if running else None
