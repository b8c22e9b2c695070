"""deploy/'s monitoring files as the tests read them: the scrape job and the Grafana dashboard.

The scrape job runs on a Prometheus outside Kubernetes: Debian's Prometheus is built without
Kubernetes service discovery, and no cluster runs here, so the job's ``kubernetes_sd_configs`` is
replaced by what discovery would hand it: targets carrying the ``__meta_kubernetes_*`` labels of
a worker Pod (from deploy/base/deployment.yaml). The job's own relabelling then decides, as it
would in a cluster, which targets are scraped and where.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.kube_fixtures import PROJECT_ROOT

__all__ = ["DASHBOARD", "SCRAPE_CONFIG", "dashboard_queries", "discovered_job", "pod_meta_labels"]

DEPLOY = PROJECT_ROOT / "deploy"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "scrape-config.yaml"
DASHBOARD = DEPLOY / "grafana" / "sluicegate-dashboard.json"


def pod_meta_labels(port_name: str, pod: str = "sluicegate-worker-0") -> dict[str, str]:
    """What Kubernetes pod discovery says about a worker Pod's container port ``port_name``."""
    deployment = yaml.safe_load((DEPLOY / "base" / "deployment.yaml").read_text())
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    meta = {"__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in labels.items()}
    return {
        **meta,
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_namespace": "default",
        "__meta_kubernetes_pod_name": pod,
    }


def discovered_job(targets: dict[str, str], scrape_interval: str | None = None) -> dict[str, Any]:
    """The deploy job with discovery replaced by ``targets`` (``host:port`` -> container port
    name, each as a port of a worker Pod)."""
    (job,) = yaml.safe_load(Path(SCRAPE_CONFIG).read_text())["scrape_configs"]
    job = dict(job)
    assert "kubernetes_sd_configs" in job
    del job["kubernetes_sd_configs"]
    if scrape_interval is not None:
        job["scrape_interval"] = scrape_interval
    job["static_configs"] = [
        {"targets": [address], "labels": pod_meta_labels(port_name, f"sluicegate-worker-{index}")}
        for index, (address, port_name) in enumerate(targets.items())
    ]
    return job


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query in the dashboard, template variables included."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append((f"${variable['name']}", variable["definition"]))
    return queries
