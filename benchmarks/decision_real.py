"""The real-stack cross-check of :mod:`benchmarks.decision_quality`: short rollouts of canaries of
known quality through Temporal, Envoy and Prometheus, judged by ``threshold`` and by ``compare``.

Real parts on free loopback ports: a Temporal dev server (``WorkflowEnvironment.start_local``
with the venv's ``temporal``), an in-process worker (``worker.main.build_worker``), Envoy in front
of two demo backends (``python -m sluice.stack`` subprocesses, so their latency is not the
benchmark's own GIL), Prometheus scraping Envoy's ``/stats/prometheus`` every second, and a
background load through Envoy. Each rollout's canary gets a known fault through the backend's
``PUT /_fault``; the analysis is the same for every kind, and the benchmark counts what it decided.

Between rollouts the route goes back to 100% stable and the next rollout starts only once the
canary has had no traffic for :data:`QUIET_SECONDS`, so its first measurements (Prometheus's 5 s
rate window) see none of the previous canary's requests.

Both backends fail 1% of their requests (the shared base error rate of the simulator); the canary
kinds add to that. Time is compressed (1s interval, 6s bakes, 40 requests/s), so the figures are
a check that the real parts decide as the simulated judge does on each kind, not a replay of the
simulator's 20-minute rollouts. The ``unreachable`` kind is not run here: it needs a route that
never reaches the canary, which the split check refuses before any metric is read.

Run through ``python -m benchmarks.decision_quality --real N`` (N rollouts per kind and method).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import signal
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.policy import WorkerPolicy
from sluice.demo import error_ratio_query
from sluice.stack import CANARY, STABLE, BackendProcess, DataPlane, Fault, find_binary
from worker.main import build_worker
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES

__all__ = ["KINDS", "METHODS", "run"]

BASE = Fault(error_rate=0.01)
KINDS: list[tuple[str, Fault]] = [
    ("identical", BASE),
    ("+0.5 pt errors", Fault(error_rate=0.015)),
    ("+2 pt errors", Fault(error_rate=0.03)),
    ("+5 pt errors", Fault(error_rate=0.06)),
    ("+50 ms latency", Fault(error_rate=0.01, latency_ms=50)),
    ("dead (all errors)", Fault(error_rate=1.0)),
]
METHODS = ["threshold", "compare"]
WEIGHTS = [10, 50, 100]
BAKE = "6s"
INTERVAL = "1s"
ERROR_WINDOW = "5s"
ERROR_MAX = 0.03
P99_MAX_MS = 80.0
LOAD_PER_SECOND = 40.0
VERIFY_SAMPLES = 140  # the fewest that can check 10% at alpha 1e-6 (139)
VERIFY_ALPHA = 1e-6  # many checks in one run: keep verification false alarms out of the counts
QUIET_SECONDS = 4.0
ROLLOUT_TIMEOUT = 120.0
SECTION = "### Real-stack cross-check"
OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass
class Outcome:
    kind: str
    method: str
    verdict: str
    """``promoted``, ``rolled back``, ``paused`` or the failure type."""
    highest_weight: int
    seconds: float
    """From the first canary traffic to the decision (rollback started, or the rollout done)."""
    metric: str = ""
    value: str = ""
    message: str = ""

    @property
    def caught_early(self) -> bool:
        return self.verdict == "rolled back" and self.highest_weight < 50


class _Plane(DataPlane):
    """Envoy in front of two backend subprocesses, Prometheus scraping Envoy, a load through it."""

    def __init__(self, state_dir: Path) -> None:
        backends = [BackendProcess(state_dir, name) for name in (STABLE, CANARY)]
        super().__init__(state_dir, backends, with_prometheus=True, load_per_second=LOAD_PER_SECOND)

    def set_fault(self, fault: Fault) -> None:
        self.backends[STABLE].set_fault(BASE)
        self.backends[CANARY].set_fault(fault)

    def metrics(self, method: str) -> list[dict[str, Any]]:
        if method == "compare":
            selector = 'envoy_cluster_name="{{destination}}"'
            query = (
                f'(sum(rate(envoy_cluster_upstream_rq_xx{{{selector},envoy_response_code_class="5"}}[2s]))'
                f" or vector(0)) / (sum(rate(envoy_cluster_upstream_rq_completed{{{selector}}}[2s])) > 0)"
            )
            latency = (
                f"sum(rate(envoy_cluster_upstream_rq_time_sum{{{selector}}}[2s]))"
                f" / (sum(rate(envoy_cluster_upstream_rq_time_count{{{selector}}}[2s])) > 0)"
            )
            common = {"direction": "increase", "window": "20s", "step": "2s"}
            address = self.prometheus.url
            return [
                {
                    "name": name,
                    "compare": {"prometheus": {"address": address, "query": q}, **common},
                    "inconclusiveLimit": 10,
                }
                for name, q in (("error-rate", query), ("latency", latency))
            ]
        return [
            {
                "name": "error-rate",
                "prometheus": {
                    "address": self.prometheus.url,
                    "query": error_ratio_query(CANARY, ERROR_WINDOW),
                },
                "max": ERROR_MAX,
                "inconclusiveLimit": 10,
            },
            {
                "name": "p99-latency",
                "envoy": {
                    "admin": self.envoy.admin_url,
                    "cluster": CANARY,
                    "measure": "p99LatencyMs",
                    "window": "2s",
                },
                "max": P99_MAX_MS,
                # Envoy publishes histograms at each stats flush (every 1 s): a 1 s
                # interval may see no new latency data, which is not a reason to pause.
                "inconclusiveLimit": 100,
            },
        ]

    def spec(self, method: str) -> dict[str, Any]:
        return {
            "service": f"bench-{uuid.uuid4().hex[:8]}",
            "router": {
                "kind": "envoy",
                "routesFile": str(self.envoy.routes_file),
                "routeConfig": "reviews",
                "admin": self.envoy.admin_url,
            },
            "stable": {"host": STABLE},
            "canary": {"host": CANARY},
            "steps": [{"setWeight": weight} for weight in WEIGHTS],
            "verify": {
                "url": self.envoy.url,
                "samples": VERIFY_SAMPLES,
                "header": "x-version",
                "alpha": VERIFY_ALPHA,
            },
            "analysis": {"interval": INTERVAL, "bake": BAKE, "metrics": self.metrics(method)},
        }


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _outcome(
    kind: str, method: str, status: dict[str, Any], failure: ApplicationError | None, paused: bool
) -> Outcome:
    events = status.get("events") or []
    shifts = [e for e in events if e["event"] == "weightsSet" and e["detail"].get("canary", 0) > 0]
    highest = max((int(e["detail"]["canary"]) for e in shifts), default=0)
    first = _at(shifts[0]["at"]) if shifts else None
    ended = next((_at(e["at"]) for e in events if e["event"] == "rollbackStarted"), None)
    if ended is None and status.get("finishedAt"):
        ended = _at(status["finishedAt"])
    seconds = (ended - first).total_seconds() if first and ended else float("nan")
    if paused:
        return Outcome(kind, method, "paused", highest, seconds, message=str(status.get("paused")))
    if failure is None:
        return Outcome(kind, method, "promoted", highest, seconds)
    if failure.type != "AnalysisFailed":
        return Outcome(kind, method, failure.type or "failed", highest, seconds, message=failure.message)
    found = re.search(r"metric (\S+) failed", failure.message)
    metric = found.group(1) if found else "?"
    value = ""
    for result in status.get("analysis") or []:
        if result["name"] == metric:
            failed = [m for m in result["measurements"] if m["verdict"] in ("Failed", "Error")]
            if failed:
                value = "error" if failed[-1]["value"] is None else f"{failed[-1]['value']:.3g}"
    return Outcome(kind, method, "rolled back", highest, seconds, metric, value, failure.message)


async def _rollout(client: Client, task_queue: str, plane: _Plane, kind: str, method: str) -> Outcome:
    handle = await client.start_workflow(
        "Rollout", plane.spec(method), id=f"bench-quality-{uuid.uuid4().hex[:8]}", task_queue=task_queue
    )
    deadline = time.monotonic() + ROLLOUT_TIMEOUT
    paused = False
    status: dict[str, Any] = {}
    while True:
        status = await asyncio.wait_for(handle.query("status"), 15)
        if status["phase"] in ("Succeeded", "RolledBack", "Failed"):
            break
        if status["phase"] == "Paused" or time.monotonic() > deadline:
            paused = True
            try:
                await asyncio.wait_for(
                    handle.execute_update("abort", {"by": "bench", "reason": "paused or too slow"}), 15
                )
            except TimeoutError:
                # The workflow does not answer (a stuck workflow task): end it, note it, go on.
                await handle.terminate("benchmark: rollout stuck")
                detail = f"stuck in {status['phase']} at step {status.get('currentStep')}"
                return Outcome(kind, method, "stuck", 0, float("nan"), message=detail)
            break
        await asyncio.sleep(0.25)
    failure: ApplicationError | None = None
    try:
        await asyncio.wait_for(handle.result(), 60)
    except WorkflowFailureError as error:
        cause = error.cause
        failure = cause if isinstance(cause, ApplicationError) else ApplicationError(str(cause))
    return _outcome(kind, method, await asyncio.wait_for(handle.query("status"), 15), failure, paused)


async def _measure(rounds: int) -> tuple[list[Outcome], float]:
    state_dir = Path(tempfile.mkdtemp(prefix="sluice-bench-quality-"))
    plane = _Plane(state_dir)
    started = time.monotonic()
    outcomes: list[Outcome] = []
    try:
        plane.start()
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=find_binary("temporal"),
            search_attributes=ALL_SEARCH_ATTRIBUTES,
            data_converter=pydantic_data_converter,
        )
        try:
            task_queue = f"bench-quality-{uuid.uuid4().hex[:8]}"
            policy = WorkerPolicy(routes_dirs=(plane.envoy.routes_file.parent,))
            async with build_worker(env.client, task_queue, policy):
                quiet_since = time.monotonic()
                # Kinds interleaved, so drift over the run (caches, load) hits every kind alike.
                for round_number, (kind, fault), method in itertools.product(range(rounds), KINDS, METHODS):
                    plane.set_fault(fault)
                    await asyncio.sleep(max(0.0, quiet_since + QUIET_SECONDS - time.monotonic()))
                    outcome = await _rollout(env.client, task_queue, plane, kind, method)
                    outcomes.append(outcome)
                    print(
                        f"  round {round_number + 1} {kind} {method}: {outcome.verdict} at "
                        f"{outcome.highest_weight}% after {outcome.seconds:.1f}s "
                        f"{outcome.metric} {outcome.value}",
                        flush=True,
                    )
                    plane.reset()
                    quiet_since = time.monotonic()
        finally:
            await env.shutdown()
    finally:
        plane.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    return outcomes, time.monotonic() - started


def _median(values: list[float]) -> str:
    finite = [v for v in values if v == v]
    return f"{statistics.median(finite):.1f}" if finite else "-"


def _report(outcomes: list[Outcome], rounds: int, elapsed: float) -> str:
    rows = []
    for (kind, _), method in itertools.product(KINDS, METHODS):
        mine = [o for o in outcomes if o.kind == kind and o.method == method]
        promoted = sum(o.verdict == "promoted" for o in mine)
        rolled = [o for o in mine if o.verdict == "rolled back"]
        early = sum(o.caught_early for o in mine)
        other = Counter(o.verdict for o in mine if o.verdict not in ("promoted", "rolled back"))
        metrics = Counter(o.metric for o in rolled)
        by_metric = ", ".join(f"{m} {n}" for m, n in sorted(metrics.items())) or "-"
        rows.append(
            f"| {kind} | {method} | {len(mine)} | {promoted} | {len(rolled)} | {early} | "
            f"{', '.join(f'{k} {n}' for k, n in other.items()) or '-'} | "
            f"{_median([o.seconds for o in mine if o.verdict != 'promoted'])} | {by_metric} |"
        )
    return "\n".join(
        [
            SECTION,
            "",
            f"{rounds} real rollout(s) per canary kind and method ({len(outcomes)} in all, kinds "
            f"interleaved), in {elapsed / 60:.1f} min: plan `setWeight` "
            f"{' → '.join(map(str, WEIGHTS))}, each followed by a bake of {BAKE}, analysis every "
            f"{INTERVAL}; both backends fail {BASE.error_rate:.0%} of their requests, the canary "
            "kinds add to that.",
            "",
            "| canary | method | rollouts | promoted | rolled back | caught < 50% | other | "
            "median s to decision | deciding metric |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Settings: Temporal dev server, in-process worker, Envoy with a filesystem RDS file, demo "
            "backends as subprocesses (`PUT /_fault`: random 503s at the given rate, added latency), "
            f"Prometheus scraping Envoy every 1 s, {LOAD_PER_SECOND:g} requests/s of background load; "
            f"`verify` {VERIFY_SAMPLES} samples at alpha {VERIFY_ALPHA:g}. `threshold`: Prometheus "
            f"`{error_ratio_query(CANARY, ERROR_WINDOW)}` with `max: {ERROR_MAX}` and Envoy p99 with "
            f"`max: {P99_MAX_MS:g}` ms; `compare`: the error ratio and mean latency per cluster over "
            "`rate(...[2s])`, `window: 20s`, `step: 2s`, `direction: increase`, defaults otherwise. "
            "Time is compressed against the simulation (seconds, not minutes, per step), so compare "
            "the kinds' verdicts, not the times.",
        ]
    )


def _exit_on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run(rounds: int) -> str:
    if threading.current_thread() is threading.main_thread():
        # `kill`/`timeout` must still stop every process started here (the finally blocks).
        signal.signal(signal.SIGTERM, _exit_on_term)
    outcomes, elapsed = asyncio.run(_measure(rounds))
    return _report(outcomes, rounds, elapsed)
