"""The worker's Prometheus endpoint: Temporal SDK metrics and sluicegate's, on one ``/metrics``.

The SDK's Rust core serves the endpoint (``temporalio.runtime.PrometheusConfig``); the client,
and so the Worker built on it, must use the runtime made here. sluicegate's own metrics
(:mod:`workflows.rollout_metrics`) are recorded through the SDK's metric meter and so appear on
the same endpoint, unprefixed (``sluice_*``); the SDK's carry the ``temporal_`` prefix.
"""

from __future__ import annotations

import ipaddress

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from workflows.rollout_metrics import APPROVAL_WAIT, APPROVAL_WAIT_BUCKETS, MetricDefinition

__all__ = ["TEMPORAL_SDK_METRICS", "MetricsUnavailable", "check_metrics_address", "metrics_runtime"]

_WORKFLOW = ("namespace", "task_queue", "workflow_type")
_ACTIVITY = ("namespace", "task_queue", "activity_type")
TEMPORAL_SDK_METRICS = (
    MetricDefinition("temporal_workflow_completed", "counter", _WORKFLOW, "Workflow executions completed"),
    MetricDefinition("temporal_workflow_failed", "counter", _WORKFLOW, "Workflow executions failed"),
    MetricDefinition(
        "temporal_workflow_task_execution_latency", "histogram", _WORKFLOW,
        "Milliseconds the worker took to run a workflow task",
    ),
    MetricDefinition(
        "temporal_workflow_task_schedule_to_start_latency", "histogram", ("namespace", "task_queue"),
        "Milliseconds a workflow task waited for a worker (backlog: add workers)",
    ),
    MetricDefinition(
        "temporal_activity_execution_latency", "histogram", _ACTIVITY,
        "Milliseconds an activity attempt ran",
    ),
)  # fmt: skip
"""The Temporal SDK metrics the dashboard and the README name (the SDK exports many more: see
Temporal's SDK metrics reference). The worker's metrics test checks that each is exported."""


class MetricsUnavailable(RuntimeError):
    """The metrics endpoint could not be served (the port is taken, say); the message says where."""


def check_metrics_address(address: str) -> str:
    """``address`` if it is ``IP:port`` as the SDK binds it (``0.0.0.0:9464``, ``[::]:9464``);
    else a :class:`ValueError` saying what is expected (host names are not resolved)."""
    host, _, port = address.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        ip = ipaddress.ip_address(host[1:-1] if bracketed else host)
        if bracketed != (ip.version == 6) or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(address)  # IPv6 goes in brackets, IPv4 not
    except ValueError:
        raise ValueError(
            f"must be IP:port (0.0.0.0:9464, 127.0.0.1:9464 or [::]:9464), got {address!r}"
        ) from None
    return address


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime serving Prometheus metrics at ``http://{address}/metrics``.

    SDK metrics keep their defaults (``temporal_`` prefix, no ``_total`` suffix, durations in
    milliseconds), so Temporal's published SDK dashboards read them as they are."""
    config = PrometheusConfig(
        bind_address=address,
        histogram_bucket_overrides={APPROVAL_WAIT.name: list(APPROVAL_WAIT_BUCKETS)},
    )
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=config))
    except ValueError as error:  # the core reports a taken port so
        raise MetricsUnavailable(
            f"SLUICE_METRICS_ADDRESS: cannot serve metrics on {address}: {error}"
        ) from None
