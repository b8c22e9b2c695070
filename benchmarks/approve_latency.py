"""From an ``approve`` update returning to Envoy serving the next weights, beside the floor, with
and without many other rollouts open.

Starts the local stack (Temporal dev server, Envoy, two demo backends, ``python -m worker`` as a
subprocess) on free ports and the floor's worker (:mod:`benchmarks.scale_floor`). For each count
in ``SLUICE_BENCH_APPROVE_OPEN`` (default ``0,1000``), that many ``dryRun`` rollouts are first
opened and left waiting at a gate on the same worker; then a ``Rollout`` whose plan is
``approval, setWeight`` pairs with no ``verify`` and a ``FloorGates`` workflow (wait for the
update, write the next routes file and rename it into place: what Temporal itself costs) go
through their gates one after the other (the rollout first: it owns the route while it runs):
approve, then poll Envoy's admin (about every millisecond) until it serves the new route version.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle

from benchmarks import setting_ints, summary
from benchmarks.scale_floor import FLOOR_GATES_WORKFLOW
from benchmarks.scale_stack import (
    FIRST_GATE,
    ONE_GATE_PLAN,
    FloorWorker,
    gather_limited,
    rollout_spec,
    wait_for_count,
)
from sluice.stack import CANARY, STABLE, LocalStack, StackPorts, applied_route_version, routes_text
from worker.client import connect
from worker.settings import Settings

GATES = 10
POLL_SECONDS = 0.001
START_CONCURRENCY = 50
FLOOR_QUEUE = "floor-bench"


@dataclass
class Gates:
    """Milliseconds per gate, from the update returning (and from sending it) to Envoy applied."""

    after_return: list[float]
    after_send: list[float]


def open_counts() -> list[int]:
    return setting_ints("SLUICE_BENCH_APPROVE_OPEN", "0,1000")


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


def _floor_texts(gates: int) -> list[str]:
    """One routes file per floor gate: new weights and a new version each (Envoy ignores a file
    whose route config did not change)."""
    texts = []
    for gate in range(1, gates + 1):
        canary = 5 + 10 * (gate - 1)
        clusters = [{"name": STABLE, "weight": 100 - canary}, {"name": CANARY, "weight": canary}]
        weighted = {"weighted_clusters": {"clusters": clusters}}
        route = {"name": "default", "match": {"prefix": "/"}, "route": weighted}
        texts.append(routes_text([route], version=f"floor-{uuid.uuid4().hex[:8]}"))
    return texts


async def _time_gate(
    admin: httpx.Client, admin_url: str, approve: Callable[[], Awaitable[Any]]
) -> tuple[float, float]:
    before = applied_route_version(admin_url, client=admin)
    sent = time.perf_counter()
    await approve()
    returned = time.perf_counter()
    deadline = returned + 30
    while applied_route_version(admin_url, client=admin) == before:
        if time.perf_counter() > deadline:
            raise TimeoutError("Envoy never applied the new routes after an approval")
        time.sleep(POLL_SECONDS)  # a tight poll is the measurement
    applied = time.perf_counter()
    return (applied - returned) * 1000, (applied - sent) * 1000


async def _open_rollouts(client: Client, stack: LocalStack, count: int) -> float:
    """Start ``count`` dryRun rollouts waiting at a gate; seconds until all wait there."""
    if count == 0:
        return 0.0
    started = time.monotonic()
    prefix = f"open-{uuid.uuid4().hex[:6]}"
    starts = [
        lambda i=i: client.start_workflow(
            "Rollout",
            rollout_spec(f"{prefix}-{i}", ONE_GATE_PLAN),
            id=f"bench-open-{prefix}-{i}",
            task_queue=stack.task_queue,
        )
        for i in range(count)
    ]
    await gather_limited(starts, START_CONCURRENCY)
    at_gate = f'WorkflowType = "Rollout" AND SluiceWaitingFor = "approval" AND SluiceStep = {FIRST_GATE}'
    reached = await wait_for_count(client, at_gate, count, timeout=120 + 2 * count)
    return reached - started


async def _measure(stack: LocalStack, open_count: int, already_open: int) -> tuple[Gates, Gates, float]:
    client = await connect(Settings(address=stack.temporal.address))
    opened_s = await _open_rollouts(client, stack, open_count - already_open)
    steps: list[dict[str, Any]] = []
    for gate in range(1, GATES + 1):
        steps += [{"approval": {}}, {"setWeight": 10 * gate}]
    spec = stack.spec_for(steps=steps)
    del spec["verify"]  # the measured path is approve → set_weights → rename → Envoy
    rollout = await client.start_workflow(
        "Rollout", spec, id=f"bench-approve-{uuid.uuid4().hex[:8]}", task_queue=stack.task_queue
    )
    floor: WorkflowHandle[Any, Any] = await client.start_workflow(
        FLOOR_GATES_WORKFLOW,
        args=[str(stack.envoy.routes_file), _floor_texts(GATES)],
        id=f"bench-approve-floor-{uuid.uuid4().hex[:8]}",
        task_queue=FLOOR_QUEUE,
    )
    ours, bare = Gates([], []), Gates([], [])
    admin_url = stack.envoy.admin_url
    with httpx.Client(timeout=2) as admin:
        for gate in range(GATES):
            await _waiting_at_gate(rollout, step=1 + 2 * gate)
            returned, sent = await _time_gate(
                admin, admin_url, lambda: rollout.execute_update("approve", {"by": "bench"})
            )
            ours.after_return.append(returned)
            ours.after_send.append(sent)
        result = await rollout.result()
        if not isinstance(result, dict):
            raise RuntimeError(f"unexpected rollout result {result!r}")
        # The floor's gates after the rollout ended: the rollout owns the route while it runs
        # (a foreign write is drift to it), and they share one Envoy and one routes file.
        for _ in range(GATES):
            returned, sent = await _time_gate(
                admin, admin_url, lambda: floor.execute_update("approve", "bench")
            )
            bare.after_return.append(returned)
            bare.after_send.append(sent)
    await floor.result()
    return ours, bare, opened_s


def _ratio(ours: list[float], bare: list[float]) -> str:
    return f"{statistics.median(ours) / statistics.median(bare):.1f}x"


def _rows(label: str, ours: Gates, bare: Gates) -> list[str]:
    return [
        f"| {label} | rollout: update returned → Envoy applied | {summary(ours.after_return)} "
        f"| {_ratio(ours.after_return, bare.after_return)} |",
        f"| {label} | floor: update returned → Envoy applied | {summary(bare.after_return)} | |",
        f"| {label} | rollout: update sent → Envoy applied | {summary(ours.after_send)} "
        f"| {_ratio(ours.after_send, bare.after_send)} |",
        f"| {label} | floor: update sent → Envoy applied | {summary(bare.after_send)} | |",
    ]


def run() -> str:
    counts = sorted(open_counts())  # a bad setting is refused before anything starts
    state = Path(tempfile.mkdtemp(prefix="sluice-bench-approve-"))
    rows: list[str] = []
    per_gate: list[str] = []
    try:
        with LocalStack(state, ports=StackPorts.free()) as stack:
            floor_worker = FloorWorker(state, stack.temporal.address, FLOOR_QUEUE)
            floor_worker.start()
            try:
                already_open = 0
                for open_count in counts:
                    ours, bare, opened_s = asyncio.run(_measure(stack, open_count, already_open))
                    already_open = open_count
                    opened = f" (opened in {opened_s:.0f} s)" if opened_s else ""
                    rows += _rows(f"{open_count:,}{opened}", ours, bare)
                    values = ", ".join(f"{value:.1f}" for value in ours.after_return)
                    per_gate.append(f"- {open_count:,} open: {values}")
            finally:
                floor_worker.stop()
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return "\n".join(
        [
            "## Approve → Envoy serves the new weights",
            "",
            "Local stack on free loopback ports: Temporal dev server (SQLite file), `python -m worker` as a",
            "subprocess, Envoy with a filesystem RDS file, two demo backends; beside it the floor's worker",
            "(`benchmarks/scale_floor.py`, bare temporalio). One `Rollout` with "
            f"{GATES} `approval` + `setWeight` pairs and no `verify`, and one `FloorGates` workflow "
            "(wait for an `approve` update, then an activity writes the next routes file and renames "
            "it into place) pass their gates, the rollout's first (it owns the route while it runs): "
            "at each gate the benchmark sends `approve` (`execute_update`, "
            "Python client) and polls Envoy's `/config_dump?resource=dynamic_route_configs` every "
            f"{POLL_SECONDS * 1000:.0f} ms until its `version_info` changes. The rollout's path is one "
            "workflow task, one `set_weights` activity (read, edit, temp file + rename, wait for "
            "Envoy's admin to report the version) and Envoy's reload; the floor's is one workflow task, "
            "one write + rename and Envoy's reload. *Open* rollouts are `dryRun` rollouts (each its own "
            "service) started 50 at a time and left waiting at a gate on the same worker "
            "(`SLUICE_BENCH_APPROVE_OPEN`).",
            "",
            "| open rollouts | path | median ms | p90 ms | max ms | ÷ floor (median) |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "Each gate of the rollout, update returned → applied (ms):",
            "",
            *per_gate,
        ]
    )
