"""A Prometheus beside the local stack, scraping Envoy's admin ``/stats/prometheus`` every second.

``sluice demo``, the decision-quality benchmark and the metric tests start one so rollouts can
run ``analysis`` against real PromQL. The binary is Debian's ``prometheus`` package
(``apt-get install prometheus``); it listens on 127.0.0.1 only, keeps its TSDB under the state
directory, and is stopped by its PID like every other piece of the stack.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx

from sluice.stack._envoy import EnvoyProxy
from sluice.stack._processes import LOOPBACK, ManagedProcess, StackError, find_binary, free_port, poll_until

__all__ = ["PrometheusServer"]


class PrometheusServer(ManagedProcess):
    """Prometheus scraping ``targets`` (job name -> ``host:port``) at ``metrics_path``.

    The configuration file and the TSDB live under ``state_dir/prometheus``, the log under
    ``state_dir/logs/prometheus.log``. ``port=None`` picks a free loopback port.
    """

    def __init__(
        self,
        state_dir: Path,
        targets: dict[str, str],
        port: int | None = None,
        *,
        scrape_interval: str = "1s",
        metrics_path: str = "/stats/prometheus",
        name: str = "prometheus",
    ) -> None:
        self.targets = dict(targets)
        self.port = port if port is not None else free_port()
        self.scrape_interval = scrape_interval
        self.metrics_path = metrics_path
        self.directory = state_dir / name
        self.config_file = self.directory / "prometheus.yml"
        self.data_dir = self.directory / "data"
        args = [
            find_binary("prometheus"),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--log.level=warn",
        ]
        super().__init__(name, args, state_dir / "logs" / f"{name}.log")

    @classmethod
    def for_envoy(cls, state_dir: Path, envoy: EnvoyProxy, port: int | None = None) -> PrometheusServer:
        """Scrape one Envoy's admin port (job ``envoy``), as the demo, the benchmark and the
        metric tests do."""
        return cls(state_dir, {"envoy": f"{LOOPBACK}:{envoy.admin_port}"}, port)

    @property
    def url(self) -> str:
        """Base URL of the HTTP API (what a metric's ``prometheus.address`` takes)."""
        return f"http://{LOOPBACK}:{self.port}"

    def prepare(self) -> None:
        """An empty TSDB (no series from an earlier run) and the scrape configuration."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": self.metrics_path,
                    "scrape_interval": self.scrape_interval,
                    "static_configs": [{"targets": [target]}],
                }
                for job, target in self.targets.items()
            ],
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML

    def ready(self) -> bool:
        """``/-/ready`` answers 200."""
        return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200

    def query(self, promql: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """An instant query's result list (raises :class:`StackError` on an API error)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=timeout)
        body = response.json()
        if body.get("status") != "success":
            raise StackError(f"prometheus query {promql!r} failed: {body.get('error', body)}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, promql: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Until ``promql`` returns a non-empty result (scrapes are asynchronous); that result."""
        return poll_until(
            lambda: self.query(promql), timeout, f"prometheus: {promql!r} still empty", every=0.5
        )

    def wait_for_targets(self, timeout: float = 15.0) -> None:
        """Until every target has been scraped successfully once (``up == 1``)."""
        up: dict[str, str] = {}

        def all_up() -> bool:
            nonlocal up
            up = {str(series["metric"].get("job")): series["value"][1] for series in self.query("up")}
            return all(up.get(job) == "1" for job in self.targets)

        self.wait_until(all_up, timeout, lambda: f"scraped ({up or 'no scrape yet'})")
