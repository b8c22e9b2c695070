"""A real Prometheus (Debian's ``prometheus`` package) on a free loopback port, for tests.

It scrapes the given targets every second into a temporary TSDB, and is stopped by its PID.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.envoy_stack import LOOPBACK, free_port, require_binary

__all__ = ["PrometheusServer", "prometheus_binary", "start_prometheus"]


def prometheus_binary() -> str:
    """``/usr/bin/prometheus`` (apt-get install prometheus), else PATH."""
    candidate = "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    return require_binary(candidate or shutil.which("prometheus"), "prometheus (apt-get install prometheus)")


@dataclass
class PrometheusServer:
    """A running Prometheus; ``url`` is its HTTP API base."""

    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    targets: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def query(self, promql: str) -> list[dict[str, object]]:
        """An instant query's result list (raises on an API error)."""
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5).json()
        assert body["status"] == "success", body
        result: list[dict[str, object]] = body["data"]["result"]
        return result

    def wait_for(self, promql: str, timeout: float = 30.0) -> list[dict[str, object]]:
        """Poll until ``promql`` returns a non-empty result (scrapes are asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus: {promql!r} still empty after {timeout:g}s")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop Prometheus by its PID (idempotent)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_prometheus(
    targets: dict[str, str], scrape_interval: str = "1s", metrics_path: str = "/stats/prometheus"
) -> PrometheusServer:
    """Start Prometheus scraping ``targets`` (job name -> ``host:port``); the caller stops it."""
    binary = prometheus_binary()
    workdir = Path(tempfile.mkdtemp(prefix="sluice-prometheus-"))
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": metrics_path,
                "scrape_interval": scrape_interval,
                "static_configs": [{"targets": [target]}],
            }
            for job, target in targets.items()
        ],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(process, port, workdir, dict(targets))
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"prometheus did not become ready:\n{log.read_text()}")
        time.sleep(0.2)


@pytest.fixture
def prometheus_factory() -> Iterator[list[PrometheusServer]]:
    """Start servers with ``start_prometheus`` and append them here; all are stopped after."""
    started: list[PrometheusServer] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()
            shutil.rmtree(server.workdir, ignore_errors=True)
