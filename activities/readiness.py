"""Activity ``canary_ready``: can the canary serve before it gets its first traffic?

Kubernetes routers with ``canary.deployment``: the Deployment is Available, its pods are all
updated and available, and the controller has seen its latest spec (the checks ``kubectl rollout
status`` makes). Envoy with ``router.admin``: the canary cluster has a healthy host in the admin's
``/clusters`` (with active health checks, a host starts unhealthy until its first check passes).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from kubernetes import client
from temporalio import activity

from activities.errors import RouteNotFound, SluiceError, as_application_error
from activities.outbound import GuardedTransport
from activities.policy import current_policy
from activities.routers._kube import REQUEST_TIMEOUT, api_client, kube_errors
from workflows.models import Readiness, RouteInput
from workflows.spec import EnvoyRouterSpec

__all__ = ["canary_ready", "deployment_readiness", "envoy_cluster_readiness"]


def deployment_readiness(namespace: str, name: str, api: client.ApiClient | None = None) -> Readiness:
    """Whether Deployment ``namespace/name`` has rolled out completely and is Available."""
    apps = client.AppsV1Api(api or api_client())
    what = f"Deployment {namespace}/{name}"
    try:
        with kube_errors("get", "deployments.apps", what):
            # Raw JSON: only the fields read here matter, not the client's idea of a full object.
            answer = apps.read_namespaced_deployment(
                name, namespace, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
            )
            deployment: dict[str, Any] = json.loads(answer.data)  # type: ignore[attr-defined]
    except RouteNotFound:
        return Readiness(ready=False, reason=f"{what} does not exist (yet)")
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    updated, available = int(status.get("updatedReplicas", 0)), int(status.get("availableReplicas", 0))
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    generation = (deployment.get("metadata") or {}).get("generation")
    if generation is not None and int(status.get("observedGeneration", 0)) < int(generation):
        return Readiness(ready=False, reason=f"{what}: the controller has not seen its latest spec yet")
    if updated < wanted or available < wanted or int(status.get("replicas", 0)) > updated:
        return Readiness(
            ready=False, reason=f"{what}: {updated} of {wanted} pods updated, {available} available"
        )
    if conditions.get("Available") != "True":
        return Readiness(ready=False, reason=f"{what}: not Available")
    return Readiness(ready=True, reason=f"{what}: {available} of {wanted} pods available")


def envoy_cluster_readiness(admin: str, cluster: str) -> Readiness:
    """Whether Envoy's cluster ``cluster`` has a healthy host (admin ``/clusters``)."""
    outbound = current_policy().outbound
    outbound.check("router.admin", admin)
    transport = GuardedTransport(outbound, "router.admin")
    with httpx.Client(timeout=5.0, transport=transport) as http:
        try:
            answer = http.get(admin.rstrip("/") + "/clusters", params={"format": "json"})
            statuses = answer.json().get("cluster_statuses", [])
        except (httpx.HTTPError, ValueError, AttributeError) as error:
            return Readiness(ready=False, reason=f"Envoy admin {admin} did not answer /clusters ({error})")
    found = next((c for c in statuses if c.get("name") == cluster), None)
    if found is None:
        return Readiness(ready=False, reason=f"Envoy has no cluster {cluster}")
    hosts = found.get("host_statuses", [])
    healthy = sum(_healthy(host.get("health_status", {})) for host in hosts)
    reason = f"Envoy cluster {cluster}: {healthy} of {len(hosts)} hosts healthy"
    return Readiness(ready=healthy > 0, reason=reason)


def _healthy(health: dict[str, Any]) -> bool:
    failed = any(value is True for key, value in health.items() if key.startswith("failed"))
    return not failed and health.get("eds_health_status", "HEALTHY") == "HEALTHY"


@activity.defn(name="canary_ready")
async def canary_ready(route: RouteInput) -> Readiness:
    """One look at the canary (the workflow asks again until it is ready or its time is up)."""
    try:
        if route.canary.deployment is not None:
            return await asyncio.to_thread(deployment_readiness, route.namespace, route.canary.deployment)
        if isinstance(route.router, EnvoyRouterSpec) and route.router.admin:
            return await asyncio.to_thread(envoy_cluster_readiness, route.router.admin, route.canary.host)
    except SluiceError as error:
        raise as_application_error(error) from error
    return Readiness(ready=True, reason="nothing to check")
