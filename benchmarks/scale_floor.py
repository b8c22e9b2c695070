"""The floor the scale benchmarks compare against: what Temporal itself costs on this machine.

A bare temporalio workflow that waits for an ``approve`` update and then runs one trivial
activity renaming a file: the least a rollout gate can cost (``FloorGate``); and its multi-gate
form for the approve → Envoy benchmark, whose activity writes the next Envoy routes file and
renames it into place (``FloorGates``). ``python -m benchmarks.scale_floor ADDRESS TASK_QUEUE
READY_FILE`` hosts both (a worker process of its own, like ``python -m worker``, with the SDK's
default sandbox and cache) until SIGTERM.
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

__all__ = ["FLOOR_GATES_WORKFLOW", "FLOOR_WORKFLOW", "FloorGate", "FloorGates", "rename_file", "write_file"]

FLOOR_WORKFLOW = "FloorGate"
FLOOR_GATES_WORKFLOW = "FloorGates"


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


@activity.defn(name="floor_write_file")
def write_file(path: str, text: str) -> None:
    """Write ``text`` beside ``path`` and rename it over ``path`` (Envoy never sees half a file)."""
    target = Path(path)
    with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False) as temporary:
        temporary.write(text)
    os.replace(temporary.name, target)


@workflow.defn(name=FLOOR_GATES_WORKFLOW)
class FloorGates:
    """Per gate: wait for ``approve`` (an update), then write that gate's text to ``path``."""

    def __init__(self) -> None:
        self.approvals = 0

    @workflow.run
    async def run(self, path: str, texts: list[str]) -> int:
        for gate, text in enumerate(texts):
            passed = gate + 1
            await workflow.wait_condition(lambda: self.approvals >= passed)  # noqa: B023 (awaited here)
            await workflow.execute_activity(
                write_file, args=[path, text], start_to_close_timeout=timedelta(seconds=10)
            )
        return len(texts)

    @workflow.update(name="approve")
    def approve(self, by: str) -> str:
        self.approvals += 1
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
        workflows=[FloorGate, FloorGates],
        activities=[rename_file, write_file],
        activity_executor=ThreadPoolExecutor(max_workers=16),
    )
    async with worker:
        ready_file.touch()
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
