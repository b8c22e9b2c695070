"""The real-stack cross-check of :mod:`benchmarks.decision_quality`: short rollouts of canaries of
known quality through Temporal, Envoy and Prometheus, judged by ``threshold``, ``compare`` and
``sequential``, beside the simulator run at the same settings.

Real parts on free loopback ports: a Temporal dev server (``WorkflowEnvironment.start_local``
with the venv's ``temporal``), an in-process worker (``worker.main.build_worker``), Envoy in front
of two demo backends (``python -m sluice.stack`` subprocesses, so their latency is not the
benchmark's own GIL), Prometheus scraping Envoy's ``/stats/prometheus`` every second, and a
background load through Envoy. Each rollout's canary gets a known fault through the backend's
``PUT /_fault``; the analysis is the same for every kind, and the benchmark counts what it decided.

Between rollouts the route goes back to 100% stable and the next rollout starts only once the
canary has had no traffic for :data:`QUIET_SECONDS` (longer than the method's windows), so its
first measurements see none of the previous canary's requests.

Both backends fail 1% of their requests (the shared base error rate of the simulator); the canary
kinds add to that. Time is compressed (2 s interval, 10 s a step, 100 requests/s) so that 10
rollouts per kind and method fit in about an hour; the simulator's main table uses 30 s, 10 min
and the same 100 requests/s. A real-stack result is only comparable with a simulation of the same
settings, so :data:`SIMULATED` describes this run to the simulator, which judges
``SLUICE_BENCH_REAL_SIMULATED`` (1,000) rollouts per kind with them; the table puts the two side
by side. The ``unreachable`` kind is not run here: it needs a route that never reaches the
canary, which the split check refuses before any metric is read.

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
from benchmarks import decision_quality, setting_int
from benchmarks.decision_quality import Settings
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
METHODS = ["threshold", "compare", "sequential"]
WEIGHTS = [10, 50, 100]
STEP_SECONDS = 10  # at 10% and at 50%; 100% is the end of the plan (as the simulator's "promoted")
INTERVAL_SECONDS = 2
THRESHOLD_WINDOW = "6s"
COMPARE_STEP = "2s"
COMPARE_WINDOW = "12s"  # 7 points a side, minSamples 5
ERROR_MAX = 0.03
LATENCY_MAX_MS = 30.0  # the backends answer in about 1 ms; the +50 ms kind reads about 50
INCONCLUSIVE_LIMIT = 5  # compare's first 4 looks (2s apart) have fewer than minSamples points
LOAD_PER_SECOND = 100.0
VERIFY_SAMPLES = 140  # the fewest that can check 10% at alpha 1e-6 (139)
VERIFY_ALPHA = 1e-6  # many checks in one run: keep verification false alarms out of the counts
QUIET_SECONDS = {"threshold": 8.0, "compare": 14.0, "sequential": 3.0}
"""Seconds without canary traffic before a rollout of each method: longer than its windows
(``threshold`` 6 s, ``compare`` 12 s plus a step; ``sequential`` takes its baseline at the start)."""
ROLLOUT_TIMEOUT = 120.0
SIMULATED = Settings(
    bucket=INTERVAL_SECONDS,
    interval=INTERVAL_SECONDS,
    plan=((WEIGHTS[0], STEP_SECONDS), (WEIGHTS[1], STEP_SECONDS)),
    total_rps=LOAD_PER_SECOND,
    threshold_window=int(THRESHOLD_WINDOW.rstrip("s")),
    compare_window=COMPARE_WINDOW,
    latency_ms=1.0,
    latency_noise_ms=0.5,
    latency_max_ms=LATENCY_MAX_MS,
    inconclusive_limit=INCONCLUSIVE_LIMIT,
)
"""This run's settings as the simulator takes them (the compare step is the bucket)."""
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
        address = self.prometheus.url
        latency_threshold = {
            "name": "latency",
            "prometheus": {"address": address, "query": _mean_latency(f'"{CANARY}"', THRESHOLD_WINDOW)},
            "max": LATENCY_MAX_MS,
            "inconclusiveLimit": INCONCLUSIVE_LIMIT,
        }
        if method == "compare":
            selector = 'envoy_cluster_name="{{destination}}"'
            errors = (
                f'(sum(rate(envoy_cluster_upstream_rq_xx{{{selector},envoy_response_code_class="5"}}'
                f"[{COMPARE_STEP}])) or vector(0)) / (sum(rate(envoy_cluster_upstream_rq_completed"
                f"{{{selector}}}[{COMPARE_STEP}])) > 0)"
            )
            common = {"direction": "increase", "window": COMPARE_WINDOW, "step": COMPARE_STEP}
            return [
                {
                    "name": name,
                    "compare": {"prometheus": {"address": address, "query": q}, **common},
                    "inconclusiveLimit": INCONCLUSIVE_LIMIT,
                }
                for name, q in (
                    ("errors", errors),
                    ("latency", _mean_latency('"{{destination}}"', COMPARE_STEP)),
                )
            ]
        if method == "sequential":
            selector = 'envoy_cluster_name="{{destination}}"'
            counters = {
                "errors": f'sum(envoy_cluster_upstream_rq_xx{{{selector},envoy_response_code_class="5"}})'
                " or vector(0)",
                "requests": f"sum(envoy_cluster_upstream_rq_completed{{{selector}}})",
            }
            sequential = {"prometheus": {"address": address}, "canary": counters, "stable": counters}
            return [
                {"name": "errors", "sequential": sequential, "inconclusiveLimit": INCONCLUSIVE_LIMIT},
                latency_threshold,
            ]
        return [
            {
                "name": "errors",
                "prometheus": {"address": address, "query": error_ratio_query(CANARY, THRESHOLD_WINDOW)},
                "max": ERROR_MAX,
                "failureLimit": 1,
                "inconclusiveLimit": INCONCLUSIVE_LIMIT,
            },
            latency_threshold,
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
            "steps": [
                {"setWeight": WEIGHTS[0]},
                {"pause": {"duration": f"{STEP_SECONDS}s"}},
                {"setWeight": WEIGHTS[1]},
                {"pause": {"duration": f"{STEP_SECONDS}s"}},
                {"setWeight": WEIGHTS[2]},
            ],
            "verify": {
                "url": self.envoy.url,
                "samples": VERIFY_SAMPLES,
                "header": "x-version",
                "alpha": VERIFY_ALPHA,
            },
            "analysis": {"interval": f"{INTERVAL_SECONDS}s", "metrics": self.metrics(method)},
        }


def _mean_latency(cluster: str, window: str) -> str:
    """Mean upstream latency (ms) of the Envoy cluster ``cluster`` (a quoted label value) over
    ``window``; no data without requests."""
    selector = f"envoy_cluster_name={cluster}"
    return (
        f"sum(rate(envoy_cluster_upstream_rq_time_sum{{{selector}}}[{window}]))"
        f" / (sum(rate(envoy_cluster_upstream_rq_time_count{{{selector}}}[{window}])) > 0)"
    )


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
                    await asyncio.sleep(max(0.0, quiet_since + QUIET_SECONDS[method] - time.monotonic()))
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


def _simulated_row(outcomes: list[decision_quality.Outcome]) -> str:
    """The simulator's shares at this run's settings: promoted, rolled back, caught before 50%."""
    n = len(outcomes)
    rolled = [o for o in outcomes if o.verdict == "rolled back"]
    promoted = sum(o.verdict == "promoted" for o in outcomes)
    early = sum(o.weight < 50 for o in rolled)
    decided = [float(o.seconds) for o in outcomes if o.verdict != "promoted"]
    return (
        f"{promoted / n:.0%} | {len(rolled) / n:.0%} | {early / n:.0%} | "
        f"{f'{statistics.median(decided):.0f}' if decided else '-'}"
    )


def _report(
    outcomes: list[Outcome],
    rounds: int,
    elapsed: float,
    simulated: dict[str, dict[str, list[decision_quality.Outcome]]],
    simulated_rollouts: int,
) -> str:
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
            f"{_median([o.seconds for o in mine if o.verdict != 'promoted'])} | {by_metric} | "
            f"{_simulated_row(simulated[kind][method])} |"
        )
    plan = " → ".join(f"{weight}% for {seconds}s" for weight, seconds in SIMULATED.plan)
    return "\n".join(
        [
            SECTION,
            "",
            f"{rounds} real rollout(s) per canary kind and method ({len(outcomes)} in all, kinds "
            f"interleaved) in {elapsed / 60:.1f} min, beside {simulated_rollouts} simulated "
            "rollouts per kind at the same settings (the right-hand columns). Plan: "
            f"{plan} (each a `pause` with a duration), then 100%; analysis every "
            f"{INTERVAL_SECONDS}s; {LOAD_PER_SECOND:g} requests/s; both backends fail "
            f"{BASE.error_rate:.0%} of their requests, the canary kinds add to that. Seconds to "
            "a decision: median over the rollouts that were not promoted, from the first canary "
            "traffic (real: the `weightsSet` event) to the rollback.",
            "",
            "| canary | method | real rollouts | promoted | rolled back | caught < 50% | other | "
            "median s to decision | deciding metric | simulated: promoted | rolled back | "
            "caught < 50% | median s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Settings: Temporal dev server, in-process worker, Envoy with a filesystem RDS file, demo "
            "backends as subprocesses (`PUT /_fault`: random 503s at the given rate, added latency), "
            f"Prometheus scraping Envoy every 1 s, {LOAD_PER_SECOND:g} requests/s of background load "
            f"(a fixed rate, not Poisson); `verify` {VERIFY_SAMPLES} samples at alpha "
            f"{VERIFY_ALPHA:g} at each weight (those requests count too); before each rollout the "
            "canary has had no traffic for longer than the method's windows ("
            + ", ".join(f"{m} {s:g} s" for m, s in QUIET_SECONDS.items())
            + f"). Every method has "
            f"`inconclusiveLimit: {INCONCLUSIVE_LIMIT}` on each metric. `threshold`: the canary's "
            f"error ratio over `rate(...[{THRESHOLD_WINDOW}])` "
            f"(`{error_ratio_query(CANARY, THRESHOLD_WINDOW)}`) "
            f"with `max: {ERROR_MAX}`, `failureLimit: 1`, and its mean latency over "
            f"`[{THRESHOLD_WINDOW}]` with `max: {LATENCY_MAX_MS:g}` ms; `compare`: the error ratio "
            f"and mean latency per cluster over `rate(...[{COMPARE_STEP}])`, `window: "
            f"{COMPARE_WINDOW}`, `step: {COMPARE_STEP}`, `direction: increase`, defaults otherwise; "
            "`sequential`: Envoy's cumulative `upstream_rq_xx` (5xx) and `upstream_rq_completed` "
            "per cluster from Prometheus, the defaults (`alpha: 0.01`, `tolerance: 0.1`), beside "
            "`threshold`'s latency metric. The simulation: the same plan, interval, windows and "
            f"limits on {SIMULATED.bucket}s buckets of Poisson traffic, latency "
            f"{SIMULATED.latency_ms:g} ± {SIMULATED.latency_noise_ms:g} ms per bucket.",
        ]
    )


def _exit_on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def simulated_per_kind() -> int:
    """Simulated rollouts per kind set beside the real ones (``SLUICE_BENCH_REAL_SIMULATED``)."""
    return setting_int("SLUICE_BENCH_REAL_SIMULATED", 1000, minimum=1)


def run(rounds: int, simulated_rollouts: int | None = None) -> str:
    if threading.current_thread() is threading.main_thread():
        # `kill`/`timeout` must still stop every process started here (the finally blocks).
        signal.signal(signal.SIGTERM, _exit_on_term)
    simulated_rollouts = simulated_rollouts or simulated_per_kind()
    simulated = decision_quality.simulate(simulated_rollouts, settings=SIMULATED)
    outcomes, elapsed = asyncio.run(_measure(rounds))
    return _report(outcomes, rounds, elapsed, simulated, simulated_rollouts)
