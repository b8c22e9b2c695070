"""Helpers for driving Rollout workflows in tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from temporalio.client import WorkflowHandle

__all__ = ["dry_run_spec", "wait_for_status"]


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
