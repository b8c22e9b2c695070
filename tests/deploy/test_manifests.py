"""Every manifest under deploy/ validated offline, and the examples driven through the emulator.

- Kubernetes objects: ``kubernetes-validate`` (bundled upstream schemas, strict: unknown fields
  fail), file by file and as rendered by ``kubectl kustomize`` when kubectl is installed.
- Istio / Gateway API examples: the upstream CRD schemas in ``tests/schemas``.
- Rollout specs: :func:`workflows.spec.validate_spec`.
- Policy the issue asks for: non-root, read-only root filesystem, requests and limits, probes,
  a grace period longer than the worker's drain, least-privilege namespaced RBAC.
- Metrics: the Prometheus scrape config (``promtool check config``), the prometheus-operator
  PodMonitor (by shape: no CRD schema is carried for it) and the port they scrape, which is the
  one ``SLUICE_METRICS_ADDRESS`` serves; the Grafana dashboard names only exported metrics.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from activities.routers import build_router
from activities.workloads import retire_deployment
from tests.support.binaries import require_binary
from tests.support.kube_emulator import (
    DEPLOYMENT,
    GATEWAY_HTTP_ROUTE,
    ISTIO_VIRTUAL_SERVICE,
    KubeEmulator,
)
from tests.support.kube_fixtures import PROJECT_ROOT, SCHEMA_DIR, kube, read_back, schema_errors
from tests.support.monitoring import DASHBOARD, SCRAPE_CONFIG, dashboard_queries, discovered_job
from worker.metrics import TEMPORAL_SDK_METRICS
from worker.settings import Settings
from workflows.models import RouteInput, Weights
from workflows.rollout_metrics import SLUICE_METRICS
from workflows.spec import RolloutSpec, validate_spec

__all__ = ["kube"]  # the fixture, imported so pytest finds it here

DEPLOY = PROJECT_ROOT / "deploy"
KUBERNETES_VERSION = "1.33"
CRD_SCHEMAS = {
    ("networking.istio.io", "VirtualService"): "istio-virtualservice.json",
    ("networking.istio.io", "DestinationRule"): "istio-destinationrule.json",
    ("gateway.networking.k8s.io", "HTTPRoute"): "gateway-httproute.json",
}
KUSTOMIZE_KINDS = {"Kustomization", "Component"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def kustomizations() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, doc) for path in yaml_files() for doc in documents(path) if doc.get("kind") in KUSTOMIZE_KINDS
    ]


def patch_files() -> set[Path]:
    """Partial objects that only make sense merged into the base (validated once rendered)."""
    return {
        (path.parent / patch["path"]).resolve()
        for path, doc in kustomizations()
        for patch in doc.get("patches", [])
        if "path" in patch
    }


def group_of(doc: dict[str, Any]) -> str:
    api_version = str(doc.get("apiVersion", ""))
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


POD_MONITOR_KEYS = {
    "": {"apiVersion", "kind", "metadata", "spec"},
    "spec": {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel", "podTargetLabels"},
    "endpoint": {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels", "relabelings",
                 "metricRelabelings"},
}  # fmt: skip


def check_pod_monitor(doc: dict[str, Any], where: str) -> None:
    """prometheus-operator's PodMonitor, by shape: no schema of its CRD is carried, so known keys
    only (a misspelt one fails) and the types the scrape depends on."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1", where
    assert set(doc) <= POD_MONITOR_KEYS[""], where
    spec = doc["spec"]
    assert set(spec) <= POD_MONITOR_KEYS["spec"], where
    labels = spec["selector"]["matchLabels"]
    assert set(spec["selector"]) == {"matchLabels"} and all(isinstance(v, str) for v in labels.values()), (
        where
    )
    assert spec["podMetricsEndpoints"], where
    for endpoint in spec["podMetricsEndpoints"]:
        assert set(endpoint) <= POD_MONITOR_KEYS["endpoint"], f"{where}: {endpoint}"
        assert isinstance(endpoint["port"], str) and endpoint.get("path", "/metrics").startswith("/"), where


def check_object(doc: dict[str, Any], where: str) -> None:
    if (group_of(doc), doc.get("kind")) == ("monitoring.coreos.com", "PodMonitor"):
        check_pod_monitor(doc, where)
        return
    schema = CRD_SCHEMAS.get((group_of(doc), str(doc.get("kind"))))
    if schema is not None:
        assert schema_errors(doc, schema) == [], where
        return
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{where}: {error.message} at {list(error.path)}")


def test_the_crd_schemas_are_in_the_repository_with_their_source() -> None:
    """A clone tests itself alone: every schema the tests name is carried, and its README says
    where it came from."""
    readme = (SCHEMA_DIR / "README.md").read_text()
    for filename in CRD_SCHEMAS.values():
        assert (SCHEMA_DIR / filename).is_file(), filename
    for path in SCHEMA_DIR.glob("*.json"):
        assert f"| {path.name} " in readme, path.name


def test_there_is_something_to_validate() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in yaml_files()}
    assert {
        "base/deployment.yaml",
        "base/role.yaml",
        "overlays/example/kustomization.yaml",
    } <= names
    assert (DEPLOY / "Dockerfile").is_file()


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_file(path: Path) -> None:
    docs = documents(path)
    assert docs, f"{path} is empty"
    for index, doc in enumerate(docs):
        where = f"{path.relative_to(DEPLOY)}[{index}]"
        if doc.get("kind") in KUSTOMIZE_KINDS:
            for key in ("resources", "components"):
                for ref in doc.get(key) or []:
                    assert (path.parent / ref).exists(), f"{where}: {key} {ref} does not exist"
            for patch in doc.get("patches") or []:
                if "path" in patch:
                    assert (path.parent / patch["path"]).is_file(), f"{where}: {patch} is missing"
        elif "apiVersion" not in doc and "service" in doc:
            validate_spec(doc)  # a rollout spec: raises SpecError naming the field
        elif "apiVersion" not in doc and "scrape_configs" in doc:
            assert path.parent.name == "prometheus", where  # promtool checks it below
        elif path.resolve() in patch_files():
            assert doc.get("kind") and doc.get("metadata", {}).get("name"), where
        else:
            check_object(doc, where)


def test_the_validators_reject_a_broken_object() -> None:
    """A guard on the guard: an unknown field and a wrong type both fail strict validation."""
    deployment = documents(DEPLOY / "base" / "deployment.yaml")[0]
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    role = documents(DEPLOY / "base" / "role.yaml")[0]
    role["rules"][0]["verb"] = ["get"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(role, KUBERNETES_VERSION, strict=True)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    # The machine image ships Debian's kubectl; under CI a missing one fails instead of skipping.
    kubectl = require_binary("kubectl")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(directory)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def with_all_components(tmp_path: Path) -> Path:
    overlay = tmp_path / "all"
    overlay.mkdir()
    shutil.copytree(DEPLOY, overlay / "deploy")
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "bookinfo",
                "resources": ["deploy/overlays/example"],
                "components": [
                    "deploy/components/delete-deployments",
                    "deploy/components/temporal-mtls",
                    "deploy/components/prometheus-operator",
                ],
            }
        )
    )
    return overlay


@pytest.mark.parametrize("which", ["base", "overlays/example", "all components"])
def test_rendered_objects_validate(which: str, tmp_path: Path) -> None:
    directory = with_all_components(tmp_path) if which == "all components" else DEPLOY / which
    objects = kustomize(directory)
    assert {o["kind"] for o in objects} >= {
        "Deployment",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
    }
    for obj in objects:
        check_object(obj, f"{which}: {obj['kind']}/{obj['metadata']['name']}")
        # Namespaced only: nothing cluster-wide, ever.
        assert obj["kind"] not in {"ClusterRole", "ClusterRoleBinding", "Namespace"}


def test_mtls_component_mounts_what_it_points_at(tmp_path: Path) -> None:
    objects = kustomize(with_all_components(tmp_path))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["TEMPORAL_TLS_CERT"].startswith(mounts["temporal-tls"] + "/")
    assert env["TEMPORAL_TLS_KEY"].startswith(mounts["temporal-tls"] + "/")
    assert mounts["tmp"] == "/tmp"  # the base's mounts survive the patch
    assert "TEMPORAL_API_KEY" in env
    assert {o["metadata"]["namespace"] for o in objects} == {"bookinfo"}


def test_worker_deployment_is_hardened() -> None:
    deployment = documents(DEPLOY / "base" / "deployment.yaml")[0]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["serviceAccountName"] == "sluicegate-worker"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(container)
    assert container["command"] == ["python", "-m", "worker"]
    # The worker drains in-flight activities for 20 s after SIGTERM (worker/main.py).
    assert pod["terminationGracePeriodSeconds"] > 20
    # The probes read the file the worker touches; it must live on a writable volume.
    config = documents(DEPLOY / "base" / "configmap.yaml")[0]["data"]
    health = config["SLUICE_HEALTH_FILE"]
    assert all(health in " ".join(container[p]["exec"]["command"]) for p in ("livenessProbe",))
    writable = [m["mountPath"] for m in container["volumeMounts"]]
    assert any(health.startswith(m.rstrip("/") + "/") for m in writable)
    assert {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE"} <= set(config)


# -- metrics: the port, the scrape config, the PodMonitor, the dashboard ---------------------

POD_MONITOR = DEPLOY / "components" / "prometheus-operator" / "podmonitor.yaml"


def worker_pod() -> tuple[dict[str, Any], dict[str, Any]]:
    """The worker Deployment's pod template metadata and its one container."""
    template = documents(DEPLOY / "base" / "deployment.yaml")[0]["spec"]["template"]
    (container,) = template["spec"]["containers"]
    return template["metadata"], container


def test_the_worker_serves_metrics_on_the_port_prometheus_scrapes() -> None:
    config = documents(DEPLOY / "base" / "configmap.yaml")[0]["data"]
    address = Settings.from_env(config).metrics_address  # what the worker reads, checked as it does
    assert address == "0.0.0.0:9464"
    port = int(address.rpartition(":")[2])
    metadata, container = worker_pod()
    assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in container["ports"]
    annotations = metadata["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"

    # the plain Prometheus job keeps exactly the worker pods' port named "metrics", at /metrics
    (job,) = documents(SCRAPE_CONFIG)[0]["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keep.pop("__meta_kubernetes_pod_container_port_name") == "metrics"
    pod_labels = {
        "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", name): value
        for name, value in metadata["labels"].items()
    }
    assert keep and all(re.fullmatch(regex, pod_labels[label]) for label, regex in keep.items())

    # the PodMonitor selects the same pods and port
    (monitor,) = documents(POD_MONITOR)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= metadata["labels"].items()
    assert [(e["port"], e["path"]) for e in monitor["spec"]["podMetricsEndpoints"]] == [
        ("metrics", "/metrics")
    ]


def test_the_scrape_config_is_valid_prometheus_configuration(tmp_path: Path) -> None:
    """promtool checks the job as written, with discovery swapped for its result (Debian's
    Prometheus has no Kubernetes discovery; tests/worker/test_metrics.py scrapes a worker so)."""
    promtool = require_binary("promtool")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": [discovered_job({"127.0.0.1:9464": "metrics"})]}))
    done = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


EXPORTED_SERIES = {series for metric in (*SLUICE_METRICS, *TEMPORAL_SDK_METRICS) for series in metric.series}
# a metric name is what stands right before a {selector} or a [range] in these queries
METRIC_NAME = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=[{\[])")


def test_the_dashboard_names_only_metrics_the_worker_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "sluicegate"
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert all(panel["targets"] for panel in panels)
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in panels)
    used = set()
    for title, query in dashboard_queries():
        names = set(METRIC_NAME.findall(query.replace("label_values(", "label_values[")))
        names.discard("label_values")
        if title == "$service":
            names = {query.split("(")[1].split(",")[0]}
        assert names, f"{title}: no metric in {query}"
        assert names <= EXPORTED_SERIES, f"{title}: {sorted(names - EXPORTED_SERIES)} are not exported"
        used |= names
    # every sluicegate metric has a panel
    for metric in SLUICE_METRICS:
        assert used & set(metric.series), f"no panel shows {metric.name}"
    # no two panels overlap
    cells = [
        (x, y)
        for panel in dashboard["panels"]
        for x in range(panel["gridPos"]["x"], panel["gridPos"]["x"] + panel["gridPos"]["w"])
        for y in range(panel["gridPos"]["y"], panel["gridPos"]["y"] + panel["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells))
    assert max(x for x, _ in cells) < 24


def readme_section(title: str) -> str:
    text = (PROJECT_ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_documents_every_metric_and_the_scrape_job_as_shipped() -> None:
    section = readme_section("Worker metrics")
    rows = {
        cells[1].strip("` "): cells
        for line in section.splitlines()
        if line.startswith("| `sluice_")
        for cells in [line.split("|")]
    }
    for metric in SLUICE_METRICS:
        cells = rows.pop(metric.name)
        assert cells[2].strip() == metric.kind, metric.name
        assert [label.strip("` ") for label in cells[3].split(",")] == list(metric.labels), metric.name
    assert not rows, f"the README names metrics the worker does not export: {sorted(rows)}"
    for metric in TEMPORAL_SDK_METRICS:
        assert f"`{metric.name}`" in section, metric.name
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == documents(SCRAPE_CONFIG)[0]


def rules(path: Path) -> set[tuple[str, str, str]]:
    role = documents(path)[0]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_role_is_exactly_what_the_routers_and_remove_old_use() -> None:
    granted = rules(DEPLOY / "base" / "role.yaml")
    route_verbs = {"get", "list", "watch", "update", "patch"}
    expected = (
        {("networking.istio.io", "virtualservices", v) for v in route_verbs}
        | {("networking.istio.io", "destinationrules", "get")}
        | {("gateway.networking.k8s.io", "httproutes", v) for v in route_verbs}
        | {("apps", r, v) for r in ("deployments", "deployments/scale") for v in ("get", "patch")}
    )
    assert granted == expected
    # Delete is opt-in, in its own component.
    assert rules(DEPLOY / "components" / "delete-deployments" / "role.yaml") == {
        ("apps", "deployments", "delete")
    }


def test_dockerfile_runs_the_worker_as_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    user_lines = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1].split(":")[0] not in {"0", "root"}
    assert 'ENTRYPOINT ["python", "-m", "worker"]' in text
    copied = {
        line.split()[1] for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line
    }
    for package in ("workflows", "activities", "worker", "sluice", "pyproject.toml"):
        assert package in copied, f"the image lacks {package}"


# -- the examples, driven through the emulator ----------------------------------------------

EXAMPLES = DEPLOY / "examples"


def example_spec(name: str) -> RolloutSpec:
    return validate_spec(yaml.safe_load((EXAMPLES / name).read_text()))


def test_istio_example_is_the_90_10_host_level_split() -> None:
    (vs,) = documents(EXAMPLES / "bookinfo-reviews-virtualservice.yaml")
    spec = example_spec("rollout-reviews-istio.yaml")
    route = next(r for r in vs["spec"]["http"] if r.get("name") == spec.router.route)  # type: ignore[union-attr]
    assert [(e["destination"]["host"], e["weight"]) for e in route["route"]] == [
        (spec.stable.host, 90),
        (spec.canary.host, 10),
    ]
    assert spec.verify is not None
    assert spec.verify.url == "http://productpage:9080/productpage"
    assert [s.kind for s in spec.steps] == [
        "setWeight",
        "approval",
        "setWeight",
        "approval",
        "setWeight",
        "approval",
        "removeOld",
    ]


async def drive(kube: KubeEmulator, spec: RolloutSpec) -> list[dict[str, Any]]:
    """0 → each setWeight → finalize, as the workflow will; the object after each write."""
    router = build_router(
        RouteInput(router=spec.router, namespace=spec.namespace, stable=spec.stable, canary=spec.canary)
    )
    kind = ISTIO_VIRTUAL_SERVICE if spec.router.kind == "istio" else GATEWAY_HTTP_ROUTE
    seen = []
    for weight in [0] + [s.set_weight for s in spec.steps if s.set_weight is not None]:
        state = await asyncio.to_thread(router.set_routes, Weights(stable=100 - weight, canary=weight))
        assert (state.stable, state.canary) == (100 - weight, weight)
        seen.append(await read_back(kube, kind, "reviews", spec.namespace))
    final = await asyncio.to_thread(router.finalize)
    assert (final.stable, final.canary) == (None, 100)
    seen.append(await read_back(kube, kind, "reviews", spec.namespace))
    return seen


async def test_istio_example_rollout_drives_the_example_virtual_service(kube: KubeEmulator) -> None:
    (vs,) = documents(EXAMPLES / "bookinfo-reviews-virtualservice.yaml")
    kube.seed(ISTIO_VIRTUAL_SERVICE, vs)
    for obj in await drive(kube, example_spec("rollout-reviews-istio.yaml")):
        assert schema_errors(obj, "istio-virtualservice.json") == []
    assert obj["spec"]["http"][0]["route"] == [
        {"destination": {"host": "reviews-v2", "port": {"number": 9080}}, "weight": 100}
    ]


async def test_gateway_example_rollout_drives_the_example_route(kube: KubeEmulator) -> None:
    (route,) = documents(EXAMPLES / "bookinfo-reviews-httproute.yaml")
    kube.seed(GATEWAY_HTTP_ROUTE, route)
    kube.seed(
        DEPLOYMENT,
        {"metadata": {"name": "reviews-v1", "namespace": "default"}, "spec": {"replicas": 2}},
    )
    spec = example_spec("rollout-reviews-gateway-api.yaml")
    for obj in await drive(kube, spec):
        assert schema_errors(obj, "gateway-httproute.json") == []
    assert obj["spec"]["rules"][0]["backendRefs"] == [{"name": "reviews-v2", "port": 9080, "weight": 100}]
    remove_old = spec.steps[-1].remove_old
    assert remove_old is not None and remove_old.deployment == "reviews-v1"
    result = await asyncio.to_thread(
        retire_deployment, spec.namespace, remove_old.deployment, remove_old.action
    )
    assert result.changed
    assert (await read_back(kube, DEPLOYMENT, "reviews-v1"))["spec"]["replicas"] == 0
