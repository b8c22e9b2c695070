"""Many open rollouts on one worker, and full dry-run rollouts per second, beside the floor.

For each N in ``SLUICE_BENCH_SCALE_N`` (default ``100,1000``), a fresh dev server (its database
file), one ``python -m worker`` and the floor's worker (:mod:`benchmarks.scale_floor`): start N
``dryRun`` rollouts, time until all wait at their gate (visibility's ``SluiceWaitingFor``), read the
worker's CPU time and RSS and the server's RSS, time ``approve`` updates while they are open, then
approve the rest and time until all completed. The same N floor workflows (wait for an update,
rename a file) run beside them. Then full rollouts without a gate at concurrency 1, 10 and 100.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from benchmarks import setting_int, setting_ints
from benchmarks.scale_floor import FLOOR_WORKFLOW
from benchmarks.scale_stack import (
    FIRST_GATE,
    ONE_GATE_PLAN,
    UNGATED_PLAN,
    ScaleStack,
    cpu_seconds,
    gather_limited,
    rollout_spec,
    rss_mb,
    task_latency,
    wait_for_count,
)
from worker.main import WORKFLOW_RUNNER
from workflows.rollout import Rollout

__all__ = ["OpenResult", "measure_open", "measure_throughput", "run"]

START_CONCURRENCY = 50
OPEN_WAVE = 250
"""Rollouts opened at a time: the next wave starts once this one waits at its gate. All 10,000 at
once would keep 20,000 workflows moving through a 1,000-entry cache, each replayed at every step
(measured: 2.8 rollouts/s to the gate instead of 6.5), which is not how rollouts arrive."""
APPROVE_SAMPLES = 50


def complete_at_most() -> int:
    """Rollouts approved to completion per N (the rest stay open): 10,000 would take half an hour."""
    return setting_int("SLUICE_BENCH_SCALE_COMPLETE", 1000, minimum=1)


CONCURRENCIES = (1, 10, 100)
OPEN_HEADER = (
    "| open rollouts | to gate | worker CPU / rollout | server CPU / rollout | task mean (tasks) "
    "| worker RSS | server RSS "
    "| approve p50 / p99 | floor approve p50 / p99 (ratio) | completed/s | floor completed/s "
    "| floor worker RSS | replay of one rollout |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


@dataclass
class OpenResult:
    """What N open rollouts cost (and the floor's figures beside them)."""

    n: int
    to_gate_s: float
    worker_cpu_ms_per_rollout: float
    server_cpu_ms_per_rollout: float
    task_ms_mean: float
    tasks: int
    worker_rss_mb: float
    server_rss_mb: float
    approve_ms: list[float]
    completed_per_s: float
    completed: int
    """How many were approved to completion for ``completed_per_s`` (the rest stayed open)."""
    floor_approve_ms: list[float]
    floor_completed_per_s: float
    floor_rss_mb: float
    replay_ms: float
    replay_events: int


async def replay_cost(client: Client, workflow_id: str, times: int = 10) -> tuple[float, int]:
    """CPU ms to replay one rollout waiting at its gate (what an evicted rollout costs when it
    next moves), in this process with the worker's sandbox; and its history's length."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    replayer = Replayer(
        workflows=[Rollout], data_converter=pydantic_data_converter, workflow_runner=WORKFLOW_RUNNER
    )
    await replayer.replay_workflow(history)  # the first replay imports what the worker already has
    started = time.process_time()
    for _ in range(times):
        await replayer.replay_workflow(history)
    return (time.process_time() - started) * 1000 / times, len(history.events)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


RPC_TIMEOUTS: list[str] = []
"""Approvals whose update RPC timed out (then sent again with the same update id), this run."""


async def _approve(client: Client, workflow_id: str, payload: Any) -> None:
    """``approve`` and wait for its outcome. An update RPC that times out on a loaded server is
    sent again with the same update id, which Temporal deduplicates: one approval, however many
    sends; each timeout is noted in :data:`RPC_TIMEOUTS` and the page reports them."""
    handle = client.get_workflow_handle(workflow_id)
    update_id = f"approve-{uuid.uuid4().hex}"
    for _ in range(10):
        try:
            await handle.execute_update("approve", payload, id=update_id)
            return
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            RPC_TIMEOUTS.append(workflow_id)
    raise TimeoutError(f"approve of {workflow_id}: the update RPC timed out 10 times")


async def _approve_timed(client: Client, workflow_ids: list[str], payload: Any) -> list[float]:
    times = []
    for workflow_id in workflow_ids:
        started = time.perf_counter()
        await _approve(client, workflow_id, payload)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def _approve_all(
    client: Client, workflow_ids: list[str], payload: Any, query: str, total: int, already: int
) -> float:
    """Approve ``workflow_ids``; their completions per second (``already`` had completed)."""
    started = time.monotonic()
    calls = [lambda w=w: _approve(client, w, payload) for w in workflow_ids]
    await gather_limited(calls, START_CONCURRENCY)
    done = await wait_for_count(client, query, total, timeout=120 + total)
    return (total - already) / max(done - started, 1e-9)


async def measure_open(stack: ScaleStack, n: int, complete: int | None = None) -> OpenResult:
    """Open N rollouts and N floor workflows on ``stack``; time approvals; approve up to
    ``complete`` of them in all (default :func:`complete_at_most`) and time their completions."""
    client = await Client.connect(stack.server.address)
    tag = uuid.uuid4().hex[:6]
    ids = [f"scale-{tag}-{i}" for i in range(n)]
    latency_before = task_latency(stack.metrics_address)
    cpu_before, server_before = cpu_seconds(stack.worker.pid), cpu_seconds(stack.server.pid)
    started = time.monotonic()
    starts = [
        lambda i=i: client.start_workflow(
            "Rollout", rollout_spec(f"svc-{tag}-{i}", ONE_GATE_PLAN), id=ids[i], task_queue=stack.task_queue
        )
        for i in range(n)
    ]
    at_gate = f'WorkflowType = "Rollout" AND SluiceWaitingFor = "approval" AND SluiceStep = {FIRST_GATE}'
    reached = started
    for wave in range(0, n, OPEN_WAVE):  # the next wave once this one waits at its gate
        await gather_limited(starts[wave : wave + OPEN_WAVE], START_CONCURRENCY)
        wanted = min(n, wave + OPEN_WAVE)
        reached = await wait_for_count(client, at_gate, wanted, timeout=120 + 2 * OPEN_WAVE)
    cpu = cpu_seconds(stack.worker.pid) - cpu_before
    server_cpu = cpu_seconds(stack.server.pid) - server_before
    latency_after = task_latency(stack.metrics_address)
    tasks = latency_after[1] - latency_before[1]
    worker_rss, server_rss = rss_mb(stack.worker.pid), rss_mb(stack.server.pid)
    replay_ms, replay_events = await replay_cost(client, ids[0])

    floor_dir = tempfile.mkdtemp(prefix="sluice-floor-")
    floor_ids = [f"floor-{tag}-{i}" for i in range(n)]
    floor_starts = [
        lambda i=i: client.start_workflow(
            FLOOR_WORKFLOW, args=[floor_dir, True], id=floor_ids[i], task_queue=stack.floor_queue
        )
        for i in range(n)
    ]
    await gather_limited(floor_starts, START_CONCURRENCY)
    await asyncio.sleep(1)  # the floor's first workflow tasks (nothing to poll: it has no status)
    floor_rss = rss_mb(stack.floor.pid)

    sample = min(APPROVE_SAMPLES, max(1, n // 2))  # half at least are left to complete
    approve_ms, floor_ms = [], []
    for index in range(sample):  # interleaved, so both see the same moment's load
        approve_ms += await _approve_timed(client, [ids[index]], {"by": "bench"})
        floor_ms += await _approve_timed(client, [floor_ids[index]], "bench")
    completed = 'ExecutionStatus = "Completed" AND WorkflowType = '
    finish = max(sample, min(n, complete or complete_at_most()))
    await wait_for_count(client, completed + '"Rollout"', sample, timeout=120)
    per_s = await _approve_all(
        client, ids[sample:finish], {"by": "bench"}, completed + '"Rollout"', finish, sample
    )
    await wait_for_count(client, completed + f'"{FLOOR_WORKFLOW}"', sample, timeout=120)
    floor_per_s = await _approve_all(
        client, floor_ids[sample:finish], "bench", completed + f'"{FLOOR_WORKFLOW}"', finish, sample
    )
    shutil.rmtree(floor_dir, ignore_errors=True)
    return OpenResult(
        n=n,
        to_gate_s=reached - started,
        worker_cpu_ms_per_rollout=cpu * 1000 / n,
        server_cpu_ms_per_rollout=server_cpu * 1000 / n,
        task_ms_mean=(latency_after[0] - latency_before[0]) / max(tasks, 1),
        tasks=tasks,
        worker_rss_mb=worker_rss,
        server_rss_mb=server_rss,
        approve_ms=approve_ms,
        completed_per_s=per_s,
        completed=finish - sample,
        floor_approve_ms=floor_ms,
        floor_completed_per_s=floor_per_s,
        floor_rss_mb=floor_rss,
        replay_ms=replay_ms,
        replay_events=replay_events,
    )


async def _run_to_end(client: Client, workflow: str, args: list[Any], task_queue: str) -> None:
    handle = await client.start_workflow(
        workflow, args=args, id=f"full-{uuid.uuid4().hex}", task_queue=task_queue
    )
    await handle.result()


async def measure_throughput(stack: ScaleStack, concurrency: int, total: int) -> tuple[float, float, float]:
    """Full dry-run rollouts (no gate) and floor workflows (no wait) per second, ``concurrency``
    at a time; and the worker's CPU ms per rollout."""
    client = await Client.connect(stack.server.address)
    tag = uuid.uuid4().hex[:6]
    cpu_before = cpu_seconds(stack.worker.pid)
    started = time.monotonic()
    calls = [
        lambda i=i: _run_to_end(
            client, "Rollout", [rollout_spec(f"full-{tag}-{i}", UNGATED_PLAN)], stack.task_queue
        )
        for i in range(total)
    ]
    await gather_limited(calls, concurrency)
    rollouts_per_s = total / (time.monotonic() - started)
    cpu_ms = (cpu_seconds(stack.worker.pid) - cpu_before) * 1000 / total
    floor_dir = tempfile.mkdtemp(prefix="sluice-floor-")
    started = time.monotonic()
    floor_calls = [
        lambda: _run_to_end(client, FLOOR_WORKFLOW, [floor_dir, False], stack.floor_queue)
        for _ in range(total)
    ]
    await gather_limited(floor_calls, concurrency)
    floor_per_s = total / (time.monotonic() - started)
    shutil.rmtree(floor_dir, ignore_errors=True)
    return rollouts_per_s, floor_per_s, cpu_ms


def _timeouts() -> str:
    if not RPC_TIMEOUTS:
        return ""
    return (
        f"\n{len(RPC_TIMEOUTS)} `approve` update RPC(s) timed out on the loaded server and were sent "
        "again with the same update id (one approval each; the time includes the wait).\n"
    )


def _of(result: OpenResult) -> str:
    """Says how many completed when not all of them were approved."""
    left_open = result.n - len(result.approve_ms) - result.completed
    if left_open <= 0:
        return ""
    return f" (of {result.completed:,} approved after the timed ones; {left_open:,} left open)"


def _open_rows(results: list[OpenResult]) -> str:
    rows = []
    for r in results:
        p50, p99 = statistics.median(r.approve_ms), _percentile(r.approve_ms, 0.99)
        f50, f99 = statistics.median(r.floor_approve_ms), _percentile(r.floor_approve_ms, 0.99)
        rows.append(
            f"| {r.n:,} | {r.to_gate_s:.1f} s | {r.worker_cpu_ms_per_rollout:.1f} ms | "
            f"{r.server_cpu_ms_per_rollout:.1f} ms | "
            f"{r.task_ms_mean:.1f} ms ({r.tasks:,}) | {r.worker_rss_mb:.0f} MB | {r.server_rss_mb:.0f} MB | "
            f"{p50:.1f} / {p99:.1f} ms | {f50:.1f} / {f99:.1f} ms ({p50 / f50:.1f}x) | "
            f"{r.completed_per_s:.1f}{_of(r)} | {r.floor_completed_per_s:.1f} "
            f"({r.floor_completed_per_s / r.completed_per_s:.1f}x ours) | "
            f"{r.floor_rss_mb:.0f} MB | {r.replay_ms:.1f} ms ({r.replay_events} events) |"
        )
    return "\n".join(rows)


def run(sizes: list[int] | None = None, total_per_concurrency: int | None = None) -> str:
    """Measure every N and concurrency on fresh stacks; the markdown section."""
    if sizes is None:
        sizes = setting_ints("SLUICE_BENCH_SCALE_N", "100,1000", minimum=1)
    complete = complete_at_most()  # read before anything starts: a bad setting stops the run here
    RPC_TIMEOUTS.clear()  # this run's only
    load_before = os.getloadavg()
    results: list[OpenResult] = []
    throughput: list[tuple[int, int, float, float, float]] = []
    stopped = ""
    for n in sizes:
        state = Path(tempfile.mkdtemp(prefix="sluice-bench-scale-"))
        begun = time.monotonic()
        try:
            with ScaleStack(state) as stack:
                results.append(asyncio.run(measure_open(stack, n, complete)))
        except Exception as error:  # the page says where it stopped and why
            stopped = (
                f"\n**Stopped at N = {n:,}** after {(time.monotonic() - begun) / 60:.0f} min: "
                f"{type(error).__name__}: {error}\n"
            )
            break
        finally:
            shutil.rmtree(state, ignore_errors=True)
    state = Path(tempfile.mkdtemp(prefix="sluice-bench-scale-"))
    try:
        with ScaleStack(state) as stack:
            for concurrency in CONCURRENCIES:
                total = total_per_concurrency or max(20, 2 * concurrency)
                figures = asyncio.run(measure_throughput(stack, concurrency, total))
                throughput.append((concurrency, total, *figures))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    load_after = os.getloadavg()
    full_rows = "\n".join(
        f"| {c} | {total} | {ours:.1f} | {floor:.1f} | {floor / ours:.1f}x | {cpu:.1f} ms |"
        for c, total, ours, floor, cpu in throughput
    )
    return f"""## Scale: open rollouts on one worker, beside the floor

Per N: a fresh `temporal server start-dev` (SQLite database file), one `python -m worker` (default
settings) and the floor's worker, all on free loopback ports. N `dryRun` rollouts (each its own
service, so each owns its route) with the plan `setWeight 10, approval, setWeight 50, setWeight 100,
removeOld` (the default plan with one gate, so one `approve` finishes it) are started
{START_CONCURRENCY} at a time in waves of {OPEN_WAVE} (the next wave once the last one waits at its
gate); *to gate* is until visibility counts all N waiting at step {FIRST_GATE}.
*Worker CPU* is the worker process's CPU time (`/proc`) from the first start until then, per
rollout (its `RouteClaim` child and activities included), and the dev server's likewise; *task*
is the SDK's mean `temporal_workflow_task_execution_latency` over those tasks (count in
brackets). RSS is read with all N open. *Replay* is the CPU time to replay one of them from its
history (fetched from the server, replayed in the benchmark's process with the worker's sandbox,
mean of 10): what a rollout evicted from the worker's cache costs when it next moves. Then
{APPROVE_SAMPLES} `approve` updates (`execute_update`, one at a time, interleaved with the floor's)
are timed while the others stay open, then the next ones up to {complete:,} in all
(`SLUICE_BENCH_SCALE_COMPLETE`; the rest stay open) are approved {START_CONCURRENCY} at a time:
*completed/s* is their completions per second, until visibility counts them completed.
The floor (`benchmarks/scale_floor.py`): a bare temporalio workflow that waits for an update and
runs one activity renaming a file, N of them open beside the rollouts on its own worker.

{OPEN_HEADER}
{_open_rows(results)}
{stopped}{_timeouts()}
Full dry-run rollouts (`setWeight 10, 50, 100, removeOld`, no gate), started and awaited
`concurrency` at a time on a fresh stack, beside floor workflows that run their activity at once:

| concurrency | rollouts | rollouts/s | floor workflows/s | floor ÷ ours | worker CPU / rollout |
|---|---|---|---|---|---|
{full_rows}

Load average (1/5/15 min) before: {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f};
after: {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} (the benchmark's own server and workers
keep {os.cpu_count()} cores busy; more than that was other work).
`SLUICE_BENCH_SCALE_N={",".join(str(n) for n in sizes)}`.
"""
