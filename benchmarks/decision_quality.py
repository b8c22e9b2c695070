"""Decision quality of metric analysis: many short rollouts of canaries of known quality.

Real parts on free loopback ports: a Temporal dev server (``WorkflowEnvironment.start_local``
with the venv's ``temporal``), an in-process worker (``worker.main.build_worker``), Envoy in front
of two demo backends (``python -m sluice.stack`` subprocesses, so their latency is not the
benchmark's own GIL), Prometheus scraping Envoy's ``/stats/prometheus`` every second, and a
background load through Envoy. Each rollout's canary gets a known fault through the backend's
``PUT /_fault``; the analysis is the same for every kind, and the benchmark counts what it decided.

Between rollouts the route goes back to 100% stable and the next rollout starts only once the
canary has had no traffic for :data:`QUIET_SECONDS`, so its first measurements (Prometheus's 5 s
rate window) see none of the previous canary's requests.

``SLUICE_BENCH_ROLLOUTS`` sets the rollouts per canary kind (default 5). Run alone with
``python -m benchmarks.decision_quality``: it prints the section and writes it into
``docs/benchmarks.md`` (replacing its own section, or appending it).
"""

from __future__ import annotations

import asyncio
import os
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

__all__ = ["KINDS", "run"]

KINDS: list[tuple[str, Fault]] = [
    ("healthy", Fault()),
    ("+2% errors", Fault(error_rate=0.02)),
    ("+5% errors", Fault(error_rate=0.05)),
    ("+20% errors", Fault(error_rate=0.2)),
    ("+100 ms latency", Fault(latency_ms=100)),
]
WEIGHTS = [10, 50, 100]
BAKE = "6s"
INTERVAL = "1s"
ERROR_WINDOW = "5s"
ERROR_MAX = 0.05
P99_MAX_MS = 80.0
LOAD_PER_SECOND = 40.0
VERIFY_SAMPLES = 100
VERIFY_ALPHA = 1e-6  # many checks in one run: keep verification false alarms out of the counts
QUIET_SECONDS = 4.0
ROLLOUT_TIMEOUT = 120.0
SECTION = "## Decision quality: metric analysis on canaries of known quality"
OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def rollouts_per_kind() -> int:
    return max(1, int(os.environ.get("SLUICE_BENCH_ROLLOUTS", "5")))


@dataclass
class Outcome:
    kind: str
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
        self.backends[CANARY].set_fault(fault)

    def spec(self) -> dict[str, Any]:
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
            "analysis": {
                "interval": INTERVAL,
                "bake": BAKE,
                "metrics": [
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
                ],
            },
        }


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _outcome(kind: str, status: dict[str, Any], failure: ApplicationError | None, paused: bool) -> Outcome:
    events = status.get("events") or []
    shifts = [e for e in events if e["event"] == "weightsSet" and e["detail"].get("canary", 0) > 0]
    highest = max((int(e["detail"]["canary"]) for e in shifts), default=0)
    first = _at(shifts[0]["at"]) if shifts else None
    ended = next((_at(e["at"]) for e in events if e["event"] == "rollbackStarted"), None)
    if ended is None and status.get("finishedAt"):
        ended = _at(status["finishedAt"])
    seconds = (ended - first).total_seconds() if first and ended else float("nan")
    if paused:
        return Outcome(kind, "paused", highest, seconds, message=str(status.get("paused")))
    if failure is None:
        return Outcome(kind, "promoted", highest, seconds)
    if failure.type != "AnalysisFailed":
        return Outcome(kind, failure.type or "failed", highest, seconds, message=failure.message)
    found = re.search(r"metric (\S+) failed", failure.message)
    metric = found.group(1) if found else "?"
    value = ""
    for result in status.get("analysis") or []:
        if result["name"] == metric:
            failed = [m for m in result["measurements"] if m["verdict"] in ("Failed", "Error")]
            if failed:
                value = "error" if failed[-1]["value"] is None else f"{failed[-1]['value']:.3g}"
    return Outcome(kind, "rolled back", highest, seconds, metric, value, failure.message)


async def _rollout(client: Client, task_queue: str, plane: _Plane, kind: str) -> Outcome:
    handle = await client.start_workflow(
        "Rollout", plane.spec(), id=f"bench-quality-{uuid.uuid4().hex[:8]}", task_queue=task_queue
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
                return Outcome(kind, "stuck", 0, float("nan"), message=detail)
            break
        await asyncio.sleep(0.25)
    failure: ApplicationError | None = None
    try:
        await asyncio.wait_for(handle.result(), 60)
    except WorkflowFailureError as error:
        cause = error.cause
        failure = cause if isinstance(cause, ApplicationError) else ApplicationError(str(cause))
    return _outcome(kind, await asyncio.wait_for(handle.query("status"), 15), failure, paused)


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
                for round_number in range(rounds):
                    for kind, fault in KINDS:
                        plane.set_fault(fault)
                        await asyncio.sleep(max(0.0, quiet_since + QUIET_SECONDS - time.monotonic()))
                        outcome = await _rollout(env.client, task_queue, plane, kind)
                        outcomes.append(outcome)
                        print(
                            f"  round {round_number + 1} {kind}: {outcome.verdict} at "
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
    details = []
    for kind, _ in KINDS:
        mine = [o for o in outcomes if o.kind == kind]
        promoted = sum(o.verdict == "promoted" for o in mine)
        rolled = [o for o in mine if o.verdict == "rolled back"]
        early = sum(o.caught_early for o in mine)
        other = Counter(o.verdict for o in mine if o.verdict not in ("promoted", "rolled back"))
        metrics = Counter(o.metric for o in rolled)
        by_metric = ", ".join(f"{m} {n}" for m, n in sorted(metrics.items())) or "-"
        rows.append(
            f"| {kind} | {len(mine)} | {promoted} | {len(rolled)} | {early} | "
            f"{len(rolled) - early} | {', '.join(f'{k} {n}' for k, n in other.items()) or '-'} | "
            f"{_median([o.seconds for o in mine])} | {by_metric} |"
        )
        details.append(
            f"- {kind}: "
            + ", ".join(
                "promoted"
                if o.verdict == "promoted"
                else f"{o.verdict} at {o.highest_weight}%" + (f" ({o.metric} {o.value})" if o.metric else "")
                for o in mine
            )
        )
    healthy = [o for o in outcomes if o.kind == "healthy"]
    bad = [o for o in outcomes if o.kind != "healthy"]
    above = [o for o in bad if o.kind != "+2% errors"]  # +2% is below the error-rate threshold
    false_rollbacks = sum(o.verdict != "promoted" for o in healthy)
    return "\n".join(
        [
            SECTION,
            "",
            f"{rounds} rollouts per canary kind ({len(outcomes)} in all, kinds interleaved), in "
            f"{elapsed / 60:.1f} min: plan `setWeight` {' → '.join(map(str, WEIGHTS))}, each "
            f"followed by an analysis bake of {BAKE}; the same analysis for every kind.",
            "",
            f"- Healthy canaries rolled back by mistake: **{false_rollbacks}/{len(healthy)}**.",
            f"- Bad canaries caught before reaching 50%: **{sum(o.caught_early for o in bad)}/"
            f"{len(bad)}**; leaving out +2% errors, which is below the {ERROR_MAX:.0%} threshold "
            f"(passing it is the configured behaviour): **{sum(o.caught_early for o in above)}/"
            f"{len(above)}**. +5% errors is exactly at the threshold, so each measurement is "
            "close to a coin toss: it is caught, not always at 10%.",
            "",
            "| canary | rollouts | promoted | rolled back | caught < 50% | caught ≥ 50% | other | "
            "median s to decision | deciding metric |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Time to decision: from the first canary traffic (the 10% `weightsSet`) to the "
            "rollback starting, or to the end of the rollout when promoted.",
            "",
            "Each rollout (round order):",
            "",
            *details,
            "",
            "Settings:",
            "",
            "- real parts on loopback: Temporal dev server (`start_local`, venv `temporal`), "
            "in-process worker (`build_worker`, pydantic converter), Envoy with a filesystem RDS "
            "file, demo backends as `python -m sluice.stack` subprocesses (faults set with "
            "`PUT /_fault`: errors are random 503s at the given rate; latency is added to every "
            "answer), Debian's Prometheus scraping Envoy's `/stats/prometheus` every 1 s",
            f"- background load: {LOAD_PER_SECOND:g} requests/s through Envoy (one client); "
            f"`verify` after each shift: {VERIFY_SAMPLES} samples by `x-version`, "
            f"`alpha: {VERIFY_ALPHA:g}`",
            f"- analysis: `interval: {INTERVAL}`, `bake: {BAKE}`",
            f"  - `error-rate`: Prometheus `{error_ratio_query(CANARY, ERROR_WINDOW)}`, "
            f"`max: {ERROR_MAX}`, `inconclusiveLimit: 10`, `failureLimit: 0`",
            f"  - `p99-latency`: Envoy provider `{{cluster: {CANARY}, measure: p99LatencyMs, "
            f"window: 2s}}`, `max: {P99_MAX_MS:g}` ms, `inconclusiveLimit: 100` (histograms reach "
            "the admin endpoint at Envoy's 1 s stats flush), `failureLimit: 0`",
            f"- between rollouts: route reset to 100% stable, next canary fault set, and "
            f"{QUIET_SECONDS:g} s without canary traffic before the next start, so no window "
            "holds the previous canary's requests",
            f"- `SLUICE_BENCH_ROLLOUTS={rounds}`",
        ]
    )


def _exit_on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run() -> str:
    rounds = rollouts_per_kind()
    if threading.current_thread() is threading.main_thread():
        # `kill`/`timeout` must still stop every process started here (the finally blocks).
        signal.signal(signal.SIGTERM, _exit_on_term)
    outcomes, elapsed = asyncio.run(_measure(rounds))
    return _report(outcomes, rounds, elapsed)


def write_section(section: str, output: Path = OUTPUT) -> None:
    """Replace this benchmark's section of ``output`` (or append it), leaving the rest alone."""
    text = output.read_text() if output.exists() else "# Benchmarks\n"
    start = text.find(SECTION)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section.strip() + "\n"
    else:
        following = text.find("\n## ", start + len(SECTION))
        rest = text[following:] if following != -1 else "\n"
        text = text[:start] + section.strip() + "\n" + rest
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)


if __name__ == "__main__":
    result = run()
    print(result)
    write_section(result)
    print(f"wrote {OUTPUT}")
