"""From an ``approve`` update returning to Envoy serving the next weights.

Starts the local stack (Temporal dev server, Envoy, two demo backends, ``python -m worker`` as a
subprocess) on free ports, starts a ``Rollout`` whose plan is ``approval, setWeight`` pairs with
no ``verify``, and at each gate times approve → workflow task → ``set_weights`` activity →
rename of the RDS file → Envoy reporting the new ``version_info`` on its admin port (polled
about every millisecond).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from benchmarks import summary
from sluice.stack import LocalStack, StackPorts, applied_route_version
from worker.client import connect
from worker.settings import Settings

GATES = 10
POLL_SECONDS = 0.001


async def _waiting_at_gate(handle: Any, step: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await handle.query("status")
        waiting = status.get("waitingFor") or {}
        if waiting.get("kind") == "approval" and waiting.get("step") == step:
            return
        if status.get("phase") in {"Failed", "RolledBack", "Succeeded"}:
            raise RuntimeError(f"rollout ended early: {status.get('phase')} {status.get('message')}")
        await asyncio.sleep(0.02)
    raise TimeoutError(f"the rollout never waited for approval at step {step}")


async def _measure(stack: LocalStack) -> tuple[list[float], list[float]]:
    client = await connect(Settings(address=stack.temporal.address))
    steps: list[dict[str, Any]] = []
    for gate in range(1, GATES + 1):
        steps += [{"approval": {}}, {"setWeight": 10 * gate}]
    spec = stack.spec_for(steps=steps)
    del spec["verify"]  # the measured path is approve → set_weights → rename → Envoy
    handle = await client.start_workflow(
        "Rollout", spec, id=f"bench-approve-{uuid.uuid4().hex[:8]}", task_queue=stack.task_queue
    )
    after_return: list[float] = []
    after_send: list[float] = []
    admin_url = stack.envoy.admin_url
    with httpx.Client(timeout=2) as admin:
        for gate in range(GATES):
            await _waiting_at_gate(handle, step=1 + 2 * gate)
            before = applied_route_version(admin_url, client=admin)
            sent = time.perf_counter()
            await handle.execute_update("approve", {"by": "bench"})
            returned = time.perf_counter()
            deadline = returned + 30
            while applied_route_version(admin_url, client=admin) == before:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"Envoy never applied the weights after gate {gate + 1}")
                time.sleep(POLL_SECONDS)  # a tight poll is the measurement
            applied = time.perf_counter()
            after_return.append((applied - returned) * 1000)
            after_send.append((applied - sent) * 1000)
    result = await handle.result()
    if not isinstance(result, dict):
        raise RuntimeError(f"unexpected rollout result {result!r}")
    return after_return, after_send


def run() -> str:
    state = Path(tempfile.mkdtemp(prefix="sluice-bench-approve-"))
    try:
        with LocalStack(state, ports=StackPorts.free()) as stack:
            after_return, after_send = asyncio.run(_measure(stack))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    rows = ", ".join(f"{value:.1f}" for value in after_return)
    return f"""## Approve → Envoy serves the new weights

Local stack on free loopback ports: Temporal dev server (SQLite file), `python -m worker` as a
subprocess, Envoy with a filesystem RDS file, two demo backends. One `Rollout` with {GATES}
`approval` + `setWeight` pairs and no `verify`; at each gate the benchmark sends the `approve`
update (`execute_update`, Python client) and polls Envoy's
`/config_dump?resource=dynamic_route_configs` every {POLL_SECONDS * 1000:.0f} ms until its
`version_info` changes. The path measured is one workflow task, one `set_weights` activity
(read, edit, temp file + rename, wait for Envoy's admin to report the version) and Envoy's reload.

| gates | from | median ms | p90 ms | max ms |
|---|---|---|---|---|
| {GATES} | `approve` update returned → Envoy applied | {summary(after_return)} |
| {GATES} | `approve` update sent → Envoy applied | {summary(after_send)} |

Each gate, update returned → applied (ms): {rows}.
"""
