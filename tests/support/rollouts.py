"""Helpers for driving Rollout workflows in tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

__all__ = ["dry_run_spec", "failure_of", "start_rollout", "wait_for_status"]


async def start_rollout(client: Client, task_queue: str, spec: dict[str, Any]) -> WorkflowHandle[Any, Any]:
    """Start ``Rollout`` under a fresh workflow id."""
    return await client.start_workflow(
        "Rollout", spec, id=f"rollout-test-{uuid.uuid4()}", task_queue=task_queue
    )


async def failure_of(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    """The typed error a rollout failed with (the test fails if it succeeded)."""
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


def dry_run_spec(steps: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """A valid spec on the dryRun router (a fresh service name so routes never collide)."""
    spec: dict[str, Any] = {
        "service": f"svc-{uuid.uuid4().hex[:8]}",
        "router": {"kind": "dryRun"},
        "stable": {"host": "reviews-v1"},
        "canary": {"host": "reviews-v2"},
    }
    if steps is not None:
        spec["steps"] = steps
    spec.update(extra)
    return spec


async def wait_for_status(
    handle: WorkflowHandle[Any, Any],
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Query ``status`` until ``predicate`` holds; fail with the last status otherwise."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = await handle.query("status")
        if predicate(status):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"status never matched within {timeout}s; last: {status}")
