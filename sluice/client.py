"""What the CLI does with Temporal: thin calls on a client, plus loading spec files."""

from __future__ import annotations

import json
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowHandle

from workflows.spec import RolloutSpec, SpecError, validate_spec

__all__ = ["load_spec_file", "start_rollout"]


def load_spec_file(path: Path | Traversable) -> tuple[dict[str, Any], RolloutSpec]:
    """Read a YAML or JSON spec (a file, or a resource of an installed package); return it as
    JSON-ready data and validated.

    Raises :class:`SpecError` naming every problem, before anything reaches Temporal.
    """
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError([f"{path}: cannot read ({error.strerror})"]) from None
    try:
        data = json.loads(text) if path.name.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise SpecError([f"{path}: not valid YAML/JSON ({error})"]) from None
    spec = validate_spec(data)
    return data, spec


async def start_rollout(
    client: Client, data: dict[str, Any], spec: RolloutSpec, task_queue: str, workflow_id: str | None = None
) -> WorkflowHandle[Any, Any]:
    """Start ``Rollout`` with the user's own spec data (what ``temporal workflow start`` would send)."""
    return await client.start_workflow(
        "Rollout", data, id=workflow_id or spec.workflow_id, task_queue=task_queue
    )
