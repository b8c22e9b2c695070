"""Pytest fixtures and assertions for tests that talk to the Kubernetes API emulator.

Import the fixture into a test module (``from tests.support.kube_fixtures import kube``):
it starts a :class:`KubeEmulator` on 127.0.0.1, writes a kubeconfig pointing at it and sets
``KUBECONFIG`` for the test, so the code under test finds the "cluster" exactly as a worker
outside a Pod would. The server stops when the test ends.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.support.kube_emulator import Kind, KubeEmulator, running_emulator, write_kubeconfig

__all__ = [
    "SCHEMA_DIR",
    "crd_schema",
    "kube",
    "openapi_schema",
    "read_back",
    "schema_errors",
    "without",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = PROJECT_ROOT / "tests" / "schemas"
"""The upstream CRD schemas the tests validate against, carried in the repository (see its README)."""


@pytest.fixture
async def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[KubeEmulator]:
    """A running emulator, with ``KUBECONFIG`` pointing at it for the test's duration."""
    async with running_emulator() as emulator:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(emulator.url))
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.delenv("SLUICE_KUBE_CONTEXT", raising=False)
        # A CI runner inside a Pod must not be taken for the worker's own cluster.
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield emulator


async def read_back(
    kube: KubeEmulator, kind: Kind, name: str, namespace: str = "default", version: str = "v1"
) -> dict[str, Any]:
    """The object as a client reads it over HTTP (not from the emulator's memory)."""
    response = await kube.get(kind.path(version, namespace, name))
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


def openapi_schema(document: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    """The ``openAPIV3Schema`` in ``document``: a whole CRD, one CRD version, or the schema.

    The files in ``tests/schemas`` are the schema itself (see its README), but a CRD copied
    from upstream as-is keeps one schema per version under ``spec.versions[].schema``; take the
    named version there, else the storage version.
    """
    if document.get("kind") == "CustomResourceDefinition":
        versions = document["spec"]["versions"]
        chosen = next(
            (v for v in versions if v["name"] == version)
            if version
            else (v for v in versions if v.get("storage")),
        )
        return dict(chosen["schema"]["openAPIV3Schema"])
    if "openAPIV3Schema" in document:
        return dict(document["openAPIV3Schema"])
    if isinstance(document.get("schema"), dict) and "openAPIV3Schema" in document["schema"]:
        return dict(document["schema"]["openAPIV3Schema"])
    return document


def crd_schema(filename: str) -> dict[str, Any]:
    """A CRD schema from :data:`SCHEMA_DIR`; a missing one fails the test (never a skip: the
    repository carries them, so a missing file is a bug, not a machine without them)."""
    path = SCHEMA_DIR / filename
    if not path.is_file():
        pytest.fail(f"{path} is missing: the upstream CRD schemas live in tests/schemas (see its README)")
    return openapi_schema(json.loads(path.read_text()))


def schema_errors(obj: dict[str, Any], filename: str) -> list[str]:
    """Every place where ``obj`` breaks the CRD schema (empty when it validates)."""
    schema = crd_schema(filename)
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator = validator_class(schema)
    return sorted(
        f"{'.'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator.iter_errors(obj)
    )


def without(obj: dict[str, Any], *paths: tuple[str | int, ...]) -> dict[str, Any]:
    """A copy of ``obj`` without the keys at ``paths`` (to compare everything else)."""
    result = copy.deepcopy(obj)
    for path in paths:
        parent: Any = result
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    return result
