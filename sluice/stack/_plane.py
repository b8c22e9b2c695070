"""The data plane alone: Envoy in front of demo backends, optionally watched by Prometheus under a
background load. What a rollout's router shifts, its verification samples and its analysis
measures, without Temporal; :class:`~sluice.stack.LocalStack` adds the dev server and a worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Self

import httpx

from sluice.stack._backend import Backend, Fault, Upstream
from sluice.stack._envoy import (
    INITIAL_VERSION,
    EnvoyProxy,
    prefix_routes,
    wait_applied,
    write_initial_routes,
    write_routes,
)
from sluice.stack._processes import StackError, free_port
from sluice.stack._prometheus import PrometheusServer
from sluice.stack._traffic import Load

__all__ = ["CANARY", "STABLE", "DataPlane"]

STABLE, CANARY = "reviews-v1", "reviews-v2"


class DataPlane:
    """Envoy on loopback routing to ``backends`` (stable first) through its RDS file.

    - ``prefix_routes``: ``/<name>/...`` goes to each backend (a test decides exactly who serves
      what) instead of the single route to the stable backend that a rollout shifts.
    - ``with_prometheus``: a Prometheus scraping Envoy's stats every second.
    - ``load_per_second``: a background :class:`Load` through Envoy (to every backend with
      ``prefix_routes``), so the metrics have data.

    Ports left ``None`` are free ones. :meth:`start` starts everything, :meth:`stop` stops
    everything started (also as a context manager).
    """

    def __init__(
        self,
        state_dir: Path,
        backends: Sequence[Upstream] | None = None,
        *,
        listener_port: int | None = None,
        admin_port: int | None = None,
        prefix_routes: bool = False,
        with_prometheus: bool = False,
        load_per_second: float = 0.0,
        health_checked: Sequence[str] = (),
    ) -> None:
        upstreams = list(backends) if backends is not None else [Backend(STABLE), Backend(CANARY)]
        self.backends = {backend.name: backend for backend in upstreams}
        self.stable_name = upstreams[0].name
        self.prefix_routes = prefix_routes
        try:
            self.envoy = EnvoyProxy(
                state_dir,
                listener_port or free_port(),
                admin_port or free_port(),
                {backend.name: backend.port for backend in upstreams},
                health_checked,
            )
            self._prometheus = PrometheusServer.for_envoy(state_dir, self.envoy) if with_prometheus else None
        except StackError:
            # A missing binary: the in-process backends already hold their ports; let them go.
            for backend in upstreams:
                backend.stop()
            raise
        urls = [f"{self.url}{name}/load" for name in self.backends] if prefix_routes else [self.url]
        self._load = Load(*urls, per_second=load_per_second) if load_per_second > 0 else None

    @property
    def url(self) -> str:
        """Envoy's listener (``http://127.0.0.1:PORT/``)."""
        return self.envoy.url

    def backend(self, name: str) -> Backend:
        """The in-process backend ``name`` (whose ``fault`` a test may change on the fly)."""
        backend = self.backends[name]
        if not isinstance(backend, Backend):
            raise StackError(f"backend {name} runs in its own process; change its fault over HTTP")
        return backend

    @property
    def admin_url(self) -> str:
        """Envoy's admin endpoint."""
        return self.envoy.admin_url

    @property
    def prometheus(self) -> PrometheusServer:
        """The Prometheus scraping Envoy (``with_prometheus``)."""
        if self._prometheus is None:
            raise StackError("this data plane runs no Prometheus (with_prometheus=False)")
        return self._prometheus

    @property
    def load(self) -> Load:
        """The background load (``load_per_second``)."""
        if self._load is None:
            raise StackError("this data plane sends no load (load_per_second=0)")
        return self._load

    def write_routes(self) -> None:
        """Write the plane's starting routes to the RDS file."""
        if self.prefix_routes:
            write_routes(self.envoy.routes_file, prefix_routes(self.backends))
        else:
            write_initial_routes(self.envoy.routes_file, self.stable_name)

    def start(self, reset_routes: bool = True, *, wait_scraped: bool = True) -> Self:
        """Prometheus, the backends, Envoy, the load, in that order; on a failure, stop what
        started. ``reset_routes=False`` keeps an existing RDS file; ``wait_scraped`` waits until
        Prometheus has scraped Envoy once."""
        try:
            # Prometheus first: its first scrape comes a few seconds after it starts.
            if self._prometheus is not None:
                self._prometheus.start()
            for backend in self.backends.values():
                backend.start()
            if reset_routes or not self.envoy.routes_file.exists():
                self.write_routes()
            self.envoy.start()
            if self._load is not None:
                self._load.start()
            if wait_scraped:
                self.wait_scraped()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_scraped(self) -> None:
        """Until Prometheus (if any) has scraped Envoy successfully once."""
        if self._prometheus is not None:
            self._prometheus.wait_for_targets()

    def stop(self) -> None:
        """Stop everything in reverse order; safe to call twice."""
        if self._load is not None:
            self._load.stop()
        self.envoy.stop()
        for backend in self.backends.values():
            backend.stop()
        if self._prometheus is not None:
            self._prometheus.stop()

    def reset(self) -> None:
        """No backend faults and the starting routes again, served by Envoy when this returns."""
        for backend in self.backends.values():
            backend.set_fault(Fault())
        self.write_routes()
        wait_applied(self.admin_url, INITIAL_VERSION)

    def send(self, backend: str, count: int) -> dict[int, int]:
        """``count`` GETs to one backend through Envoy (``prefix_routes``); status -> how many."""
        codes: dict[int, int] = {}
        with httpx.Client(timeout=10) as client:
            for index in range(count):
                code = client.get(f"{self.url}{backend}/{index}").status_code
                codes[code] = codes.get(code, 0) + 1
        return codes

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
