"""Kubernetes access: where the client's configuration comes from, and how failures map."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.errors import Conflict, Forbidden, TransientError
from activities.routers._kube import api_client, read_modify_write
from activities.routers.istio import IstioRouter
from sluice.stack import free_port
from tests.support.kube_emulator import ISTIO_VIRTUAL_SERVICE, KubeEmulator, write_kubeconfig
from tests.support.kube_fixtures import kube
from workflows.spec import Destination, IstioRouterSpec

__all__ = ["kube"]  # the fixture, imported so pytest finds it here

SPEC = IstioRouterSpec(kind="istio", virtual_service="reviews")


def router() -> IstioRouter:
    return IstioRouter(SPEC, "default", Destination(host="reviews-v1"), Destination(host="reviews-v2"))


async def test_context_comes_from_sluice_kube_context(
    kube: KubeEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, {"metadata": {"name": "reviews"}, "spec": {"http": [{}]}})
    # The current context points at a dead port; the named one at the emulator.
    config = yaml.safe_load(write_kubeconfig(tmp_path / "two", str(kube.url)).read_text())
    config["clusters"].append({"name": "dead", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}})
    config["contexts"].append({"name": "dead", "context": {"cluster": "dead", "user": "kmock"}})
    config["current-context"] = "dead"
    (tmp_path / "two").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "two"))

    with pytest.raises(TransientError, match="cannot reach the Kubernetes API"):
        await asyncio.to_thread(router().get_routes)

    monkeypatch.setenv("SLUICE_KUBE_CONTEXT", "kmock")
    state = await asyncio.to_thread(router().get_routes)
    assert (state.stable, state.canary) == (None, None)


def test_no_credentials_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(Forbidden, match="no Kubernetes credentials"):
        api_client()


def test_read_modify_write_reapplies_the_change_to_the_fresh_object() -> None:
    store: dict[str, Any] = {"metadata": {"resourceVersion": "1"}, "spec": {"a": 1}}
    sent: list[dict[str, Any]] = []

    def read() -> dict[str, Any]:
        return {"metadata": dict(store["metadata"]), "spec": dict(store["spec"])}

    def write(obj: dict[str, Any]) -> dict[str, Any]:
        sent.append(obj)
        if len(sent) == 1:  # someone else wrote b=2 meanwhile
            store.update(metadata={"resourceVersion": "2"}, spec={"a": 1, "b": 2})
            raise Conflict("stale")
        assert obj["metadata"]["resourceVersion"] == store["metadata"]["resourceVersion"]
        store.update(obj)
        return obj

    result = read_modify_write(
        read, lambda obj: obj["spec"].update(c=3), write, what="x", sleep=lambda _: None
    )
    assert result["spec"] == {"a": 1, "b": 2, "c": 3}
    assert [s["metadata"]["resourceVersion"] for s in sent] == ["1", "2"]
