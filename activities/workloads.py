"""Retiring the old version's Deployment after ``removeOld`` moved all traffic away from it.

The workflow calls :func:`retire_old_workload` after the route sends 100% to the canary alone
and a durable delay has passed (so proxies stopped sending to the old pods first, like Argo
Rollouts' ``scaleDownDelaySeconds``). ``scaleToZero`` patches ``deployments/scale`` (the Role
grants ``patch`` there); ``delete`` deletes the Deployment (the Role grants ``delete`` only where
an operator opts in). Both are idempotent: a Deployment already at 0 is not written again.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from kubernetes import client
from temporalio import activity

from activities.errors import RouteNotFound, SluiceError, WorkloadError, as_application_error
from activities.routers._kube import REQUEST_TIMEOUT, api_client, kube_errors
from workflows.models import RemoveOldInput, RetireResult

__all__ = ["RetireResult", "retire_deployment", "retire_old_workload"]


def retire_deployment(
    namespace: str,
    deployment: str | None,
    action: Literal["scaleToZero", "delete"],
    api: client.ApiClient | None = None,
) -> RetireResult:
    """Scale ``deployment`` to zero or delete it (blocking; run it in a thread).

    Raises :class:`WorkloadError` when the Deployment does not exist, :class:`Forbidden` when
    the worker may not do it, :class:`TransientError` for 5xx/429/timeouts (retried).
    """
    if deployment is None:
        return RetireResult(
            namespace=namespace,
            deployment=None,
            action="none",
            message="no deployment named in removeOld: only the route changed",
        )
    apps = client.AppsV1Api(api or api_client())
    what = f"Deployment {namespace}/{deployment}"
    try:
        with kube_errors("get", "deployments.apps/scale", what):
            scale = apps.read_namespaced_deployment_scale(
                deployment, namespace, _request_timeout=REQUEST_TIMEOUT
            )
        before = scale.spec.replicas if scale.spec is not None else None
        if action == "scaleToZero":
            if before == 0:
                return RetireResult(
                    namespace=namespace,
                    deployment=deployment,
                    action=action,
                    replicas_before=0,
                    message=f"{what} was already scaled to 0",
                )
            with kube_errors("patch", "deployments.apps/scale", what):
                apps.patch_namespaced_deployment_scale(
                    deployment,
                    namespace,
                    {"spec": {"replicas": 0}},
                    _request_timeout=REQUEST_TIMEOUT,
                )
            message = f"{what} scaled from {before} to 0 replicas"
        else:
            with kube_errors("delete", "deployments.apps", what):
                apps.delete_namespaced_deployment(
                    deployment,
                    namespace,
                    # Background: the ReplicaSets and Pods go too, without blocking this call.
                    propagation_policy="Background",
                    _request_timeout=REQUEST_TIMEOUT,
                )
            message = f"{what} deleted (it had {before} replicas)"
    except RouteNotFound as missing:
        verb = "scale it to 0" if action == "scaleToZero" else "delete it"
        raise WorkloadError(
            f"{what} not found: cannot {verb}"
            f" (the route already sends everything to the canary; check removeOld.deployment). "
            f"{missing}"
        ) from None
    return RetireResult(
        namespace=namespace,
        deployment=deployment,
        action=action,
        replicas_before=before,
        changed=True,
        message=message,
    )


@activity.defn(name="retire_old_workload")
async def retire_old_workload(input: RemoveOldInput) -> RetireResult:
    """Activity: retire the old Deployment as ``input.remove_old`` says (after the delay)."""
    step = input.remove_old
    try:
        return await asyncio.to_thread(retire_deployment, input.namespace, step.deployment, step.action)
    except SluiceError as error:
        raise as_application_error(error) from error
