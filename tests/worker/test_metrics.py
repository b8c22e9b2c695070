"""The worker's ``/metrics``, scraped by a real Prometheus while real rollouts run.

``python -m worker`` runs as a subprocess with ``SLUICE_METRICS_ADDRESS`` on a free loopback
port, against the suite's dev server; Debian's ``prometheus`` scrapes it every second with the
job of deploy/prometheus/scrape-config.yaml (its Kubernetes discovery replaced by the worker Pod
it would find, plus a port of another name that the job must drop). Three dryRun rollouts: one
approved to success (with a Prometheus metric in its analysis), one aborted at its gate, one
whose served split fails verification. The answers come from Prometheus's HTTP API, polled until
scraped (no fixed sleeps); every query of the Grafana dashboard is run against it too.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from sluice.stack import PrometheusServer, WorkerProcess, free_port
from tests.support.binaries import require_binary
from tests.support.http import page_server
from tests.support.monitoring import dashboard_queries, discovered_job
from tests.support.rollouts import dry_run_spec, failure_of, start_rollout, wait_for_status
from worker.metrics import TEMPORAL_SDK_METRICS
from worker.settings import Settings, SettingsError
from workflows.rollout_metrics import SLUICE_METRICS

JOB = "sluicegate-worker"


class DeployedJobPrometheus(PrometheusServer):
    """Prometheus running deploy/'s scrape job against ``ports`` (``host:port`` -> the name of
    the container port discovery would report for it)."""

    def __init__(self, state_dir: Path, ports: dict[str, str]) -> None:
        (worker,) = [address for address, name in ports.items() if name == "metrics"]
        super().__init__(state_dir, {JOB: worker}, metrics_path="/metrics")
        self.ports = ports

    def prepare(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [discovered_job(self.ports, scrape_interval="1s")],
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(json.dumps(config, indent=2) + "\n")


def waiting_for_approval(status: dict[str, Any]) -> bool:
    return status["phase"] == "WaitingForApproval"


async def test_prometheus_scrapes_sdk_and_sluicegate_metrics_from_the_worker(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    require_binary("prometheus")
    metrics_address = f"127.0.0.1:{free_port()}"
    worker = WorkerProcess(
        tmp_path,
        client.service_client.config.target_host,
        task_queue,
        extra_env={"SLUICE_METRICS_ADDRESS": metrics_address},
    )
    not_metrics = f"127.0.0.1:{free_port()}"  # another port of the pod: the job must not scrape it
    prometheus = DeployedJobPrometheus(tmp_path, {metrics_address: "metrics", not_metrics: "http"})
    # Prometheus first: its first scrape comes about 5 s after it starts, and the worker and the
    # three rollouts run meanwhile (what is asserted below is cumulative).
    with page_server("ok", headers={"x-version": "reviews-v1"}) as page, prometheus, worker:
        labels = f'job="{JOB}",task_queue="{task_queue}"'

        # 1. approved to success, measured by analysis while it waits at its gate
        analysis = {
            "interval": "1s",
            "metrics": [
                {"name": "up", "prometheus": {"address": prometheus.url, "query": "vector(1)"}, "max": 10}
            ],
        }
        approved_spec = dry_run_spec(
            [{"setWeight": 50}, {"approval": {}}, {"setWeight": 100}], analysis=analysis
        )
        approved = await start_rollout(client, task_queue, approved_spec)
        await wait_for_status(
            approved, lambda s: waiting_for_approval(s) and s["analysis"] and s["analysis"][0]["count"] > 0
        )
        await approved.execute_update("approve", {"by": "alice"})
        assert (await approved.result())["phase"] == "Succeeded"

        # 2. aborted at its gate
        aborted = await start_rollout(client, task_queue, dry_run_spec([{"setWeight": 10}, {"approval": {}}]))
        await wait_for_status(aborted, waiting_for_approval)
        await aborted.execute_update("abort", {"by": "bob", "reason": "metrics test"})
        assert (await failure_of(aborted)).type == "RolloutAborted"

        # 3. the page always answers stable: 100/0 verifies, 50/50 does not
        verify = {"url": page.url, "header": "x-version", "samples": 40}
        unverified = await start_rollout(client, task_queue, dry_run_spec([{"setWeight": 50}], verify=verify))
        assert (await failure_of(unverified)).type == "VerificationFailed"

        await asyncio.to_thread(prometheus.wait_for_targets)
        (target,) = prometheus.query(f'up{{job="{JOB}"}}')  # the other port was dropped
        assert target["metric"]["instance"] == metrics_address
        assert target["metric"]["pod"] == "sluicegate-worker-0"

        def wait_for(promql: str) -> list[dict[str, Any]]:
            return prometheus.wait_for(promql, timeout=60)

        approved_only = f'{labels},service="{approved_spec["service"]}"'
        for promql in (
            f'sum(sluice_rollouts_started_total{{{labels},router="dryRun"}}) == 3',  # one series per service
            f'sluice_rollouts_finished_total{{{approved_only},outcome="succeeded"}} == 1',
            f'sum(sluice_rollouts_finished_total{{{labels},outcome="rolledBack"}}) == 2',
            f'sluice_rollbacks_total{{{labels},type="RolloutAborted",router="dryRun"}} == 1',
            f'sluice_rollbacks_total{{{labels},type="VerificationFailed"}} == 1',
            # only the approved gate was released; the aborted one never was
            f"sluice_approval_wait_seconds_count{{{approved_only}}} == 1",
            f"sum(sluice_approval_wait_seconds_count{{{labels}}}) == 1",
            f'sluice_approval_wait_seconds_bucket{{{labels},le="+Inf"}} == 1',
            # step 0 and the check after the rollback passed; 50/50 did not
            f'sluice_verifications_total{{{labels},result="passed"}} == 2',
            f'sluice_verifications_total{{{labels},result="failed"}} == 1',
            f'sluice_measurements_total{{{approved_only},verdict="Successful"}} > 0',
            f'sluice_route_changes_total{{{approved_only},router="dryRun",result="succeeded"}} == 3',
            f'sluice_route_changes_total{{{labels},activity_type="set_weights",result="succeeded"}} > 0',
            # the Temporal SDK's own metrics, on the same endpoint
            f'temporal_workflow_completed{{{labels},workflow_type="Rollout"}} == 1',
            f'temporal_workflow_failed{{{labels},workflow_type="Rollout"}} == 2',
            f'temporal_workflow_task_execution_latency_count{{{labels},workflow_type="Rollout"}} > 0',
        ):
            assert await asyncio.to_thread(wait_for, promql), promql

        # every query of the dashboard runs and finds data (Grafana's variables filled in)
        for title, query in dashboard_queries():
            promql = (
                query.replace("$service", ".*").replace("$__rate_interval", "5m").replace("$__range", "1h")
            )
            if promql.startswith("label_values("):
                name, label = promql.removeprefix("label_values(").rstrip(")").split(", ")
                promql = f"count by ({label}) ({name})"
            assert await asyncio.to_thread(wait_for, promql), f"{title}: {promql}"

        # every metric the README and the dashboard name is really exported
        names = {series["metric"]["__name__"] for series in prometheus.query(f'{{job="{JOB}"}}')}
        for metric in (*SLUICE_METRICS, *TEMPORAL_SDK_METRICS):
            assert set(metric.series) <= names, f"{metric.name} not among {sorted(names)}"


@pytest.mark.parametrize(
    "value", ["localhost:9464", "9464", ":9464", "0.0.0.0:0", "0.0.0.0:70000", "::1:9464", "[127.0.0.1]:9464"]
)
def test_a_metrics_address_that_is_not_ip_and_port_is_refused_by_name(value: str) -> None:
    with pytest.raises(SettingsError, match=r"^SLUICE_METRICS_ADDRESS: must be IP:port"):
        Settings.from_env({"SLUICE_METRICS_ADDRESS": value})


def test_metrics_are_off_unless_an_address_is_set() -> None:
    assert Settings.from_env({}).metrics_address is None
    assert Settings.from_env({"SLUICE_METRICS_ADDRESS": " "}).metrics_address is None
    for value in ("0.0.0.0:9464", "127.0.0.1:9464", "[::]:9464"):
        assert Settings.from_env({"SLUICE_METRICS_ADDRESS": value}).metrics_address == value


def run_worker(metrics_address: str) -> subprocess.CompletedProcess[str]:
    # Nothing listens on port 1: a worker that got past its metrics would fail to connect (exit 3
    # too, but with another message).
    env = {
        **os.environ, "SLUICE_METRICS_ADDRESS": metrics_address, "SLUICE_LOG_FORMAT": "json",
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
    }  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "worker"], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_worker_refuses_a_bad_metrics_address_in_one_line() -> None:
    done = run_worker("localhost:9464")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "worker: SLUICE_METRICS_ADDRESS: must be IP:port (0.0.0.0:9464, 127.0.0.1:9464 or [::]:9464), "
        "got 'localhost:9464'"
    ]


def test_the_worker_stops_at_once_when_the_metrics_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        done = run_worker(address)
    assert done.returncode == 3, done.stdout + done.stderr
    (line,) = [json.loads(line) for line in done.stdout.splitlines() if "cannot" in line]
    assert line["event"] == "cannot start"
    assert line["error"].startswith(f"SLUICE_METRICS_ADDRESS: cannot serve metrics on {address}: ")
    assert "Address already in use" in line["error"]
