"""The scale benchmark's parts: a dev server, ``python -m worker`` and the floor's worker, each a
process of its own whose CPU time and memory are read from ``/proc``; and the load it puts on them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from sluice.stack import ManagedProcess, TemporalDevServer, WorkerProcess, free_port

__all__ = [
    "ONE_GATE_PLAN",
    "UNGATED_PLAN",
    "FloorWorker",
    "ScaleStack",
    "cpu_seconds",
    "gather_limited",
    "rollout_spec",
    "rss_mb",
    "task_latency",
    "wait_for_count",
]

ONE_GATE_PLAN: list[dict[str, Any]] = [
    {"setWeight": 10},
    {"approval": {}},
    {"setWeight": 50},
    {"setWeight": 100},
    {"removeOld": {}},
]
"""The default plan with one gate instead of three, so one ``approve`` finishes a rollout."""
UNGATED_PLAN: list[dict[str, Any]] = [
    {"setWeight": 10},
    {"setWeight": 50},
    {"setWeight": 100},
    {"removeOld": {}},
]
FIRST_GATE = 2


def rollout_spec(service: str, steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A ``dryRun`` rollout of ``service`` (each rollout its own service: each owns its route)."""
    spec: dict[str, Any] = {
        "service": service,
        "namespace": "default",
        "router": {"kind": "dryRun"},
        "stable": {"host": f"{service}-v1"},
        "canary": {"host": f"{service}-v2"},
    }
    if steps is not None:
        spec["steps"] = steps
    return spec


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime, stime in clock ticks (USER_HZ)


def rss_mb(pid: int) -> float:
    """The process's resident memory now, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class FloorWorker(ManagedProcess):
    """``python -m benchmarks.scale_floor``: the bare temporalio worker."""

    start_timeout = 60.0

    def __init__(self, state_dir: Path, address: str, task_queue: str) -> None:
        self.ready_file = state_dir / "floor.alive"
        args = [sys.executable, "-m", "benchmarks.scale_floor", address, task_queue, str(self.ready_file)]
        super().__init__("floor worker", args, state_dir / "logs" / "floor.log")

    def ready(self) -> bool:
        return self.ready_file.exists()


class ScaleStack:
    """A dev server (its own database file), ``python -m worker`` on ``rollouts-bench`` and the
    floor's worker on ``floor-bench``, on free ports. ``profile``: run the worker under cProfile,
    its statistics written there when it stops."""

    task_queue = "rollouts-bench"
    floor_queue = "floor-bench"

    def __init__(
        self, state_dir: Path, worker_env: dict[str, str] | None = None, profile: Path | None = None
    ):
        self.state_dir = state_dir
        self.server = TemporalDevServer(state_dir, free_port(), None)
        self.metrics_address = f"127.0.0.1:{free_port()}"
        env = {
            "SLUICE_METRICS_ADDRESS": self.metrics_address,
            "SLUICE_LOG_FORMAT": "json",
            **(worker_env or {}),
        }
        self.worker = WorkerProcess(state_dir, self.server.address, self.task_queue, extra_env=env)
        if profile is not None:
            self.worker.args = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "worker"]
        self.floor = FloorWorker(state_dir, self.server.address, self.floor_queue)

    def __enter__(self) -> ScaleStack:
        self.server.start()
        try:
            self.worker.start()
            self.floor.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.floor.stop()
        self.worker.stop(timeout=60)
        self.server.stop()


def task_latency(metrics_address: str) -> tuple[float, int]:
    """The SDK's workflow task execution latency so far: (total ms, tasks), from the worker's
    Prometheus endpoint (``temporal_workflow_task_execution_latency``, milliseconds)."""
    text = httpx.get(f"http://{metrics_address}/metrics", timeout=10).text
    total, count = 0.0, 0
    for line in text.splitlines():
        if line.startswith("temporal_workflow_task_execution_latency_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("temporal_workflow_task_execution_latency_count"):
            count += int(float(line.rsplit(" ", 1)[1]))
    return total, count


async def gather_limited(calls: Sequence[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    """Run the calls, at most ``limit`` at a time; their results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


async def wait_for_count(client: Client, query: str, wanted: int, timeout: float) -> float:
    """Poll visibility until ``query`` counts ``wanted`` workflows; the monotonic time it did."""
    deadline = time.monotonic() + timeout
    while True:
        count = (await client.count_workflows(query)).count
        if count >= wanted:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{query!r}: {count} of {wanted} after {timeout:.0f}s")
        await asyncio.sleep(0.25)
