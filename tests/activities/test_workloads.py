"""``retire_old_workload`` against the Kubernetes API emulator, as Temporal runs the activity."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.workloads import RetireResult, retire_old_workload
from tests.support.kube_emulator import DEPLOYMENT, KubeEmulator
from tests.support.kube_fixtures import kube, read_back
from workflows.models import RemoveOldInput
from workflows.spec import Destination, IstioRouterSpec, RemoveOldStep

__all__ = ["kube"]  # the fixture, imported so pytest finds it here


def reviews_v1(replicas: int = 3) -> dict[str, Any]:
    return {
        "metadata": {"name": "reviews-v1", "namespace": "default", "labels": {"app": "reviews"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "reviews", "version": "v1"}},
            "template": {
                "metadata": {"labels": {"app": "reviews", "version": "v1"}},
                "spec": {"containers": [{"name": "reviews", "image": "reviews:v1"}]},
            },
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


def remove_old(**step: Any) -> RemoveOldInput:
    return RemoveOldInput(
        router=IstioRouterSpec(kind="istio", virtual_service="reviews"),
        namespace="default",
        stable=Destination(host="reviews-v1"),
        canary=Destination(host="reviews-v2"),
        remove_old=RemoveOldStep.model_validate(step),
    )


async def retire(step: RemoveOldInput) -> RetireResult:
    result: RetireResult = await ActivityEnvironment().run(retire_old_workload, step)
    return result


async def test_scale_to_zero(kube: KubeEmulator) -> None:
    kube.seed(DEPLOYMENT, reviews_v1(3))

    result = await retire(remove_old(deployment="reviews-v1"))

    assert (result.action, result.replicas_before, result.changed) == ("scaleToZero", 3, True)
    deployment = await read_back(kube, DEPLOYMENT, "reviews-v1")
    assert deployment["spec"]["replicas"] == 0
    assert deployment["spec"]["template"] == reviews_v1()["spec"]["template"]  # untouched
    scale = await (await kube.get(DEPLOYMENT.path("v1", "default", "reviews-v1") + "/scale")).json()
    assert (scale["kind"], scale["spec"]["replicas"]) == ("Scale", 0)
    # The write went to the scale subresource (what the Role grants), not to the Deployment.
    assert [(method, path.rsplit("/", 1)[-1]) for method, path, _ in kube.writes] == [("PATCH", "scale")]


async def test_scale_to_zero_twice_writes_once(kube: KubeEmulator) -> None:
    kube.seed(DEPLOYMENT, reviews_v1(2))
    await retire(remove_old(deployment="reviews-v1"))
    again = await retire(remove_old(deployment="reviews-v1"))
    assert (again.changed, again.replicas_before) == (False, 0)
    assert len(kube.writes) == 1


async def test_delete(kube: KubeEmulator) -> None:
    kube.seed(DEPLOYMENT, reviews_v1(3))
    result = await retire(remove_old(deployment="reviews-v1", action="delete"))
    assert (result.action, result.changed) == ("delete", True)
    gone = await kube.get(DEPLOYMENT.path("v1", "default", "reviews-v1"))
    assert gone.status == 404
    deletes = [r for r in kube if r.method.value == "DELETE"]
    assert deletes[0].params.get("propagationPolicy") == "Background", deletes[0].params


async def test_without_a_deployment_only_the_route_changes(kube: KubeEmulator) -> None:
    result = await retire(remove_old())
    assert (result.action, result.deployment, result.changed) == ("none", None, False)
    assert list(kube) == []  # not a single request


async def test_missing_deployment_is_a_clear_non_retryable_error(kube: KubeEmulator) -> None:
    with pytest.raises(ApplicationError) as raised:
        await retire(remove_old(deployment="reviews-v1"))
    assert raised.value.type == "WorkloadError"
    assert raised.value.non_retryable
    assert "Deployment default/reviews-v1 not found" in str(raised.value)


async def test_forbidden_scale_names_verb_and_subresource(kube: KubeEmulator) -> None:
    kube.seed(DEPLOYMENT, reviews_v1(3))
    kube.forbid("patch", DEPLOYMENT, name="reviews-v1", subresource="scale")
    with pytest.raises(ApplicationError) as raised:
        await retire(remove_old(deployment="reviews-v1"))
    assert raised.value.type == "Forbidden"
    assert raised.value.non_retryable
    assert "may not patch deployments.apps/scale" in str(raised.value)
    assert (await read_back(kube, DEPLOYMENT, "reviews-v1"))["spec"]["replicas"] == 3


async def test_server_error_is_retryable(kube: KubeEmulator) -> None:
    kube.seed(DEPLOYMENT, reviews_v1(3))
    kube.fail("patch", DEPLOYMENT, 500, name="reviews-v1")
    with pytest.raises(ApplicationError) as raised:
        await retire(remove_old(deployment="reviews-v1"))
    assert raised.value.type == "TransientError"
    assert not raised.value.non_retryable
    result = await retire(remove_old(deployment="reviews-v1"))  # Temporal's retry
    assert result.changed
