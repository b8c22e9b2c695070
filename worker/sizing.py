"""How much one worker holds at once: its workflow cache and task slots, from the environment.

``SLUICE_MAX_CACHED_WORKFLOWS`` (default 1000, the SDK's): rollouts kept in memory between
their workflow tasks; one evicted from the cache is replayed from its history when it next moves.
``SLUICE_MAX_CONCURRENT_WORKFLOW_TASKS`` (default 100, the SDK's): workflow tasks run at once.
``SLUICE_MAX_CONCURRENT_ACTIVITIES`` (default 16): activities run at once, each on a thread of its
own (sluicegate's activities are synchronous: they block on HTTP and files).
``SLUICE_STICKY_QUEUE_TIMEOUT`` (seconds, default 10, the SDK's): how long a rollout's next workflow
task waits on the queue of the worker that cached it before any worker may take it. After a worker
dies, its rollouts move on again after this long; shorter means faster recovery, and more replays
when a busy worker is merely slow to poll.
What each costs is measured in docs/benchmarks.md and summed up in the README ("Scaling").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["SizingError", "WorkerSizing"]


class SizingError(ValueError):
    """A sizing variable is not a whole number in range; the message names it."""


@dataclass(frozen=True)
class WorkerSizing:
    """The worker's cache, slots and sticky queue (see the module docstring for the variables)."""

    max_cached_workflows: int = 1000
    max_concurrent_workflow_tasks: int = 100
    max_concurrent_activities: int = 16
    sticky_queue_timeout_seconds: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerSizing:
        """Read the ``SLUICE_MAX_*`` variables; raise :class:`SizingError` naming a bad one."""

        def number(name: str, default: int, least: int) -> int:
            value = env.get(name, "").strip()
            if not value:
                return default
            try:
                parsed = int(value)
            except ValueError:
                raise SizingError(f"{name}: must be a whole number, got {value!r}") from None
            if parsed < least:
                raise SizingError(f"{name}: must be at least {least}, got {parsed}")
            return parsed

        return cls(
            # 0 would disable the cache: every workflow task replays the whole history.
            max_cached_workflows=number("SLUICE_MAX_CACHED_WORKFLOWS", cls.max_cached_workflows, 1),
            # The SDK needs at least two: one slot is kept for a workflow's sticky queue.
            max_concurrent_workflow_tasks=number(
                "SLUICE_MAX_CONCURRENT_WORKFLOW_TASKS", cls.max_concurrent_workflow_tasks, 2
            ),
            max_concurrent_activities=number(
                "SLUICE_MAX_CONCURRENT_ACTIVITIES", cls.max_concurrent_activities, 1
            ),
            sticky_queue_timeout_seconds=number(
                "SLUICE_STICKY_QUEUE_TIMEOUT", cls.sticky_queue_timeout_seconds, 1
            ),
        )
