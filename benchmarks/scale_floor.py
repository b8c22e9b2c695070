"""The floor the scale benchmark compares against: what Temporal itself costs on this machine.

A bare temporalio workflow that waits for an ``approve`` update and then runs one trivial
activity renaming a file: the least a rollout gate can cost. ``python -m benchmarks.scale_floor
ADDRESS TASK_QUEUE READY_FILE`` hosts it (a worker process of its own, like ``python -m worker``,
with the SDK's default sandbox and cache) until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

__all__ = ["FLOOR_WORKFLOW", "FloorGate", "rename_file"]

FLOOR_WORKFLOW = "FloorGate"


@activity.defn(name="floor_rename_file")
def rename_file(directory: str) -> str:
    """Write a file and rename it over another, as a router writes its routes file."""
    target = Path(directory) / "route.json"
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False) as temporary:
        temporary.write('{"weights": [90, 10]}')
    os.replace(temporary.name, target)
    return str(target)


@workflow.defn(name=FLOOR_WORKFLOW)
class FloorGate:
    """Wait for ``approve`` (an update), rename a file, finish."""

    def __init__(self) -> None:
        self.approved = False

    @workflow.run
    async def run(self, directory: str, gated: bool) -> str:
        if gated:
            await workflow.wait_condition(lambda: self.approved)
        return str(
            await workflow.execute_activity(
                rename_file, directory, start_to_close_timeout=timedelta(seconds=10)
            )
        )

    @workflow.update(name="approve")
    def approve(self, by: str) -> str:
        self.approved = True
        return by


async def _serve(address: str, task_queue: str, ready_file: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[FloorGate],
        activities=[rename_file],
        activity_executor=ThreadPoolExecutor(max_workers=16),
    )
    async with worker:
        ready_file.touch()
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
