"""Decision quality: simulated rollouts of realistic services, judged by the real judge functions.

Both versions serve the same base error rate (1%) and latency noise; the canary kinds add errors
(+0.5, +2, +5 percentage points), latency (+50 ms), fail every request (dead), or get no traffic at
all (unreachable). The same streams of 10-second buckets (Poisson requests, binomial errors, a
latency point per bucket) are judged side by side by each method, every ``interval``, through
:func:`workflows.judge.assess_measurement` / :func:`workflows.compare.compare_samples` /
:func:`workflows.judge.assess_comparison`, tallied by :func:`workflows.judge.record_measurement`
and decided by :func:`workflows.judge.assess_analysis` (``Failed``: rolled back; ``Inconclusive``:
paused for a person; else on to the next step).

Methods (two metrics each, errors and latency):

- ``threshold``: the canary's error ratio over ``rate(...[1m])``, ``max: 0.03``, ``failureLimit: 1``
  (reads 0 with no traffic, as the README's query is written), and its mean latency over 1m,
  ``max: 130`` ms;
- ``compare``: canary vs stable with Mann-Whitney, ``direction: increase``, the defaults
  (``confidence: 0.99``, ``window: 2m``, ``step: 10s``), on per-step error ratios (``[10s]``, no
  request counted twice) and per-step latency;
- ``sequential``: the anytime-valid test of ``workflows/sequential.py`` (issue 12 part 1, built on
  another branch) on the cumulative error and request counts of both versions (``alpha: 0.01``,
  ``tolerance: 0.1``), with ``threshold``'s latency metric; reported as not run when that module is
  not importable.

``python -m benchmarks decision_quality`` (or ``python -m benchmarks.decision_quality [--rollouts
N] [--real N]``) writes the section; ``--real N`` also runs N rollouts per kind through the real
stack (:mod:`benchmarks.decision_real`: Temporal, Envoy, Prometheus) to check the simulator.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import setting_int
from benchmarks.stats import upper_bound
from workflows.analysis import AnalysisSpec, MetricSpec
from workflows.judge import (
    assess_analysis,
    assess_comparison,
    assess_measurement,
    compare_samples,
    record_measurement,
)
from workflows.measurements import AnalysisState, Measurement, MetricResult

__all__ = ["KINDS", "METHODS", "Kind", "Outcome", "report", "run", "simulate"]

BASE_ERROR_RATE = 0.01
SEED = 20261205
SECTION = "## Decision quality: simulated rollouts through the real judge functions"
OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
T0 = datetime(2026, 12, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Settings:
    """What a simulated rollout looks like: traffic, plan, how often and over what each method
    measures. The defaults are the realistic service of the main table; the real-stack
    cross-check (:mod:`benchmarks.decision_real`) simulates its own, compressed settings."""

    bucket: int = 10
    """Seconds per bucket: the compare step (one point per version)."""
    interval: int = 30
    """Seconds between measurements (a multiple of ``bucket``)."""
    plan: tuple[tuple[int, int], ...] = ((10, 600), (50, 600))
    """(canary weight %, seconds at it); past the last step: promoted."""
    total_rps: float = 100.0
    threshold_window: int = 60
    """Seconds the threshold's error ratio and latency are taken over (``rate(...[1m])``)."""
    compare_window: str = "2m"
    latency_ms: float = 100.0
    latency_noise_ms: float = 10.0
    latency_max_ms: float = 130.0
    """The threshold method's latency limit."""
    history_buckets: int = 12
    """Stable's data before the canary's first traffic."""
    inconclusive_limit: int = 2
    """Every metric's ``inconclusiveLimit`` (compare counts its first, too-short windows)."""

    @property
    def per_measurement(self) -> int:
        return self.interval // self.bucket


REALISTIC = Settings()


@dataclass(frozen=True)
class Kind:
    name: str
    extra_errors: float = 0.0
    extra_latency_ms: float = 0.0
    dead: bool = False
    unreachable: bool = False

    @property
    def healthy(self) -> bool:
        return self.extra_errors == 0 and self.extra_latency_ms == 0 and not (self.dead or self.unreachable)


KINDS = [
    Kind("identical"),
    Kind("+0.5 pt errors", extra_errors=0.005),
    Kind("+2 pt errors", extra_errors=0.02),
    Kind("+5 pt errors", extra_errors=0.05),
    Kind("+50 ms latency", extra_latency_ms=50.0),
    Kind("dead (all errors)", dead=True),
    Kind("unreachable (no traffic)", unreachable=True),
]


@dataclass
class Streams:
    """Per 10s bucket (history first): requests, errors and a latency point per version."""

    requests: dict[str, np.ndarray]
    errors: dict[str, np.ndarray]
    latency: dict[str, np.ndarray]


def streams(kind: Kind, rng: np.random.Generator, settings: Settings = REALISTIC) -> Streams:
    weights = [0] * settings.history_buckets
    for weight, seconds in settings.plan:
        weights += [weight] * (seconds // settings.bucket)
    share = np.array(weights) / 100
    requests, errors, latency = {}, {}, {}
    for version, version_share in (("stable", 1 - share), ("canary", share)):
        is_canary = version == "canary"
        expected = settings.total_rps * version_share * settings.bucket
        if is_canary and kind.unreachable:
            expected = np.zeros_like(expected)
        count = rng.poisson(expected)
        rate = 1.0 if is_canary and kind.dead else BASE_ERROR_RATE + (kind.extra_errors if is_canary else 0)
        requests[version] = count
        errors[version] = rng.binomial(count, rate)
        extra = kind.extra_latency_ms if is_canary else 0.0
        points = rng.normal(settings.latency_ms + extra, settings.latency_noise_ms, len(count))
        latency[version] = np.where(count > 0, points, np.nan)
    return Streams(requests, errors, latency)


# -- methods: each turns the streams up to bucket ``end`` into one measurement per metric ------

Measure = Callable[[MetricSpec, Streams, int, Settings], Measurement]
PROMETHEUS = {"address": "http://prometheus:9090", "query": "q"}
COMPARE = {"address": "http://prometheus:9090", "query": 'q{d="{{destination}}"}'}


def _measurement(metric: MetricSpec, value: float | None, verdict: str, message: str) -> Measurement:
    return Measurement.model_validate(
        {"metric": metric.name, "value": value, "verdict": verdict, "message": message, "at": T0}
    )


def _threshold(metric: MetricSpec, data: Streams, end: int, settings: Settings) -> Measurement:
    window = slice(end - settings.threshold_window // settings.bucket, end)
    requests = int(data.requests["canary"][window].sum())
    if metric.name == "errors":
        # (sum(rate(errors)) or vector(0)) / (sum(rate(total)) > 0) or vector(0): 0 without traffic
        value: float | None = data.errors["canary"][window].sum() / requests if requests else 0.0
    else:
        points = data.latency["canary"][window]
        value = None if requests == 0 else float(np.nanmean(points))
    verdict, message = assess_measurement(metric, value)
    return _measurement(metric, value, verdict, message)


def _compare(metric: MetricSpec, data: Streams, end: int, settings: Settings) -> Measurement:
    spec = metric.compare
    assert spec is not None
    points = int(spec.window.total_seconds() // settings.bucket) + 1
    window = slice(end - points, end)
    if metric.name == "errors":
        series = {
            version: np.where(
                data.requests[version][window] > 0,
                data.errors[version][window] / np.maximum(data.requests[version][window], 1),
                np.nan,
            )
            for version in ("stable", "canary")
        }
    else:
        series = {version: data.latency[version][window] for version in ("stable", "canary")}
    comparison = compare_samples(series["stable"].tolist(), series["canary"].tolist(), spec)
    verdict, message = assess_comparison(spec, comparison)
    return _measurement(metric, comparison.estimate, verdict, message)


@dataclass
class Method:
    name: str
    analysis: AnalysisSpec | None
    measure: Measure | None
    note: str = ""


SEQUENTIAL_ALPHA = 0.01  # the sequential metric's defaults
SEQUENTIAL_TOLERANCE = 0.1


def _methods_threshold(settings: Settings) -> AnalysisSpec:
    return AnalysisSpec.model_validate(
        {
            "interval": f"{settings.interval}s",
            "metrics": [
                {
                    "name": "errors",
                    "prometheus": PROMETHEUS,
                    "max": 0.03,
                    "failureLimit": 1,
                    "inconclusiveLimit": settings.inconclusive_limit,
                },
                {
                    "name": "latency",
                    "prometheus": PROMETHEUS,
                    "max": settings.latency_max_ms,
                    "inconclusiveLimit": settings.inconclusive_limit,
                },
            ],
        }
    )


def _methods(settings: Settings = REALISTIC) -> list[Method]:
    threshold = _methods_threshold(settings)
    compare_spec = {
        "prometheus": COMPARE,
        "direction": "increase",
        "window": settings.compare_window,
        "step": f"{settings.bucket}s",
    }
    compare = AnalysisSpec.model_validate(
        {
            "interval": f"{settings.interval}s",
            "metrics": [
                {"name": name, "compare": compare_spec, "inconclusiveLimit": settings.inconclusive_limit}
                for name in ("errors", "latency")
            ],
        }
    )
    methods = [Method("threshold", threshold, _threshold), Method("compare", compare, _compare)]
    if importlib.util.find_spec("workflows.sequential") is None:
        methods.append(
            Method(
                "sequential",
                None,
                None,
                "not run: `workflows/sequential.py` (issue 12 part 1) is not on this branch yet",
            )
        )
    else:  # the sequential branch is merged: its counts, judged by its own functions
        methods.append(_sequential_method(settings))
    return methods


def _sequential_method(settings: Settings) -> Method:
    """``sequential`` on the error counts (the API of the ``sequential`` branch: ``observe`` and
    ``judge`` over cumulative ``Counters``) beside ``threshold``'s latency metric. The errors'
    verdict is recorded as a measurement of a ``failureLimit: 0`` metric, so the same tally and
    decision functions decide."""
    sequential = importlib.import_module("workflows.sequential")
    threshold = _methods_threshold(settings)
    analysis = AnalysisSpec.model_validate(
        {
            "interval": f"{settings.interval}s",
            "metrics": [
                {"name": "errors", "prometheus": PROMETHEUS, "max": 0.5},  # stands in: verdicts below
                threshold.metrics[1].model_dump(by_alias=True),
            ],
        }
    )
    states: dict[int, Any] = {}

    def measure(metric: MetricSpec, data: Streams, end: int, settings: Settings) -> Measurement:
        if metric.name != "errors":
            return _threshold(metric, data, end, settings)
        key = id(data)
        if end == settings.history_buckets + settings.per_measurement:
            states.pop(key, None)
        reading = sequential.Counters(
            canary_errors=float(data.errors["canary"][:end].sum()),
            canary_requests=float(data.requests["canary"][:end].sum()),
            stable_errors=float(data.errors["stable"][:end].sum()),
            stable_requests=float(data.requests["stable"][:end].sum()),
        )
        if key not in states:  # the baseline: the counters when analysis started
            start = settings.history_buckets
            states[key], _ = sequential.observe(
                None,
                sequential.Counters(
                    canary_errors=float(data.errors["canary"][:start].sum()),
                    canary_requests=float(data.requests["canary"][:start].sum()),
                    stable_errors=float(data.errors["stable"][:start].sum()),
                    stable_requests=float(data.requests["stable"][:start].sum()),
                ),
                tolerance=SEQUENTIAL_TOLERANCE,
                alpha=SEQUENTIAL_ALPHA,
            )
        states[key], step = sequential.observe(
            states[key], reading, tolerance=SEQUENTIAL_TOLERANCE, alpha=SEQUENTIAL_ALPHA
        )
        failed, _, message = sequential.judge(states[key], step, SEQUENTIAL_ALPHA)
        return _measurement(metric, None, "Failed" if failed else "Successful", message)

    return Method("sequential", analysis, measure)


METHODS = [method.name for method in _methods()]


@dataclass
class Outcome:
    verdict: str
    """``promoted``, ``rolled back`` or ``paused``."""
    weight: int
    seconds: float
    canary_requests: int


def judge(method: Method, data: Streams, settings: Settings = REALISTIC) -> Outcome:
    """Measure every ``interval`` from the canary's first traffic until a decision or the end."""
    assert method.analysis is not None and method.measure is not None
    state = AnalysisState()
    per_measurement = settings.per_measurement
    total_buckets = len(data.requests["canary"])
    started = settings.history_buckets
    for end in range(started + per_measurement, total_buckets + 1, per_measurement):
        metrics = dict(state.metrics)
        for metric in method.analysis.metrics:
            current = metrics.get(metric.name) or MetricResult(name=metric.name)
            metrics[metric.name] = record_measurement(
                metric, current, method.measure(metric, data, end, settings), keep=0
            )
        state = state.model_copy(update={"metrics": metrics})
        outcome = assess_analysis(method.analysis, state)
        if outcome.phase != "Running":
            seconds = (end - started) * settings.bucket
            weight = _weight_at(seconds, settings)
            requests = int(data.requests["canary"][started:end].sum())
            return Outcome(
                "rolled back" if outcome.phase == "Failed" else "paused", weight, seconds, requests
            )
    seconds = (total_buckets - started) * settings.bucket
    return Outcome("promoted", 100, seconds, int(data.requests["canary"][started:].sum()))


def _weight_at(seconds: float, settings: Settings) -> int:
    elapsed = 0
    for weight, duration in settings.plan:
        elapsed += duration
        if seconds <= elapsed:
            return weight
    return 100


def simulate(
    rollouts: int, seed: int = SEED, settings: Settings = REALISTIC
) -> dict[str, dict[str, list[Outcome]]]:
    """Per kind, per method: the outcomes of ``rollouts`` simulated rollouts (same streams for
    every method)."""
    methods = [m for m in _methods(settings) if m.measure is not None]
    results: dict[str, dict[str, list[Outcome]]] = {k.name: {m.name: [] for m in methods} for k in KINDS}
    for index, kind in enumerate(KINDS):
        rng = np.random.default_rng([seed, index])
        for _ in range(rollouts):
            data = streams(kind, rng, settings)
            for method in methods:
                results[kind.name][method.name].append(judge(method, data, settings))
    return results


def _median(values: list[float]) -> str:
    return f"{float(np.median(values)):.0f}" if values else "-"


def report(results: dict[str, dict[str, list[Outcome]]], rollouts: int, elapsed: float) -> str:
    methods = _methods()
    rows = []
    for kind in KINDS:
        for method in methods:
            if method.measure is None:
                rows.append(f"| {kind.name} | {method.name} | {method.note} | | | | | |")
                continue
            outcomes = results[kind.name][method.name]
            n = len(outcomes)
            rolled = [o for o in outcomes if o.verdict == "rolled back"]
            paused = [o for o in outcomes if o.verdict == "paused"]
            promoted = n - len(rolled) - len(paused)
            early = sum(o.weight < 50 for o in rolled)
            decided = [o for o in outcomes if o.verdict != "promoted"]
            if kind.healthy:
                wrong = len(rolled)
                caught = f"rolled back {wrong}/{n} = {wrong / n:.2%} (≤ {upper_bound(wrong, n):.2%})"
            else:
                caught = f"{early}/{n} = {early / n:.1%}"
            rows.append(
                f"| {kind.name} | {method.name} | {caught} | {promoted} | {len(rolled)} | "
                f"{len(paused)} | {_median([o.canary_requests for o in decided])} | "
                f"{_median([o.seconds for o in decided])} |"
            )
    settings = REALISTIC
    plan = " → ".join(f"{w}% for {s // 60} min" for w, s in settings.plan)
    return "\n".join(
        [
            SECTION,
            "",
            f"{rollouts} simulated rollouts per canary kind (seed {SEED}), {elapsed / 60:.1f} min on "
            f"{os.cpu_count()} CPUs ({platform.machine()}, shared with other work). Every method "
            "judges the same streams. Plan: "
            f"{plan}, then promoted; analysis every {settings.interval}s from the first canary traffic.",
            "",
            "For the healthy kind the third column is the false-rollback rate with its one-sided 95% "
            "upper confidence bound (Clopper-Pearson); for the others it is the share caught "
            "(rolled back) before 50%. Requests and seconds: medians over the rollouts that were "
            "rolled back or paused, from the first canary traffic to the decision.",
            "",
            "| canary | method | healthy rolled back / bad caught < 50% | promoted | rolled back | "
            "paused | canary requests to decision | seconds to decision |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Settings:",
            "",
            f"- service: {settings.total_rps:g} requests/s split by the plan's weight (Poisson per "
            f"{settings.bucket}s bucket); both versions {BASE_ERROR_RATE:.0%} errors (binomial per "
            f"request) and a latency point of {settings.latency_ms:g} ± "
            f"{settings.latency_noise_ms:g} ms (Gaussian) per bucket; "
            "dead: every canary request fails; unreachable: the canary gets no requests",
            "- `threshold`: `errors` = canary errors / requests over the last minute (0 without "
            "traffic, as `(...) or vector(0)` reads), `max: 0.03`, `failureLimit: 1`; `latency` = "
            "canary mean latency over the last minute (no data without traffic), `max: 130`, "
            "`inconclusiveLimit: 2`",
            "- `compare`: `errors` = per-10s error ratio (`rate(...[10s])`, no request counted "
            "twice; no data without traffic) and `latency` = per-10s latency, stable vs canary, "
            "`direction: increase`, defaults otherwise (`confidence: 0.99`, `tolerance: 0.25`, "
            "`window: 2m`, `step: 10s`, `minSamples: 5`), `inconclusiveLimit: 2`",
            "- verdicts by `assess_measurement` / `compare_samples` + `assess_comparison`, tallies by "
            "`record_measurement`, the decision by `assess_analysis` (Failed: rolled back, "
            "Inconclusive: paused)",
            "- the split check (`verify`) is not simulated: in a real rollout an unreachable "
            "canary fails the check of its first step (0 canary answers where 10% were due) and "
            "is rolled back before any metric; here both methods can only pause on the missing "
            "latency data (`threshold`'s error ratio reads 0 without traffic and would pass)",
        ]
    )


def run(rollouts: int | None = None, real: int | None = None) -> str:
    count = rollouts or setting_int("SLUICE_BENCH_SIM_ROLLOUTS", 1000, minimum=1)
    real = real if real is not None else setting_int("SLUICE_BENCH_REAL_ROLLOUTS", 0)
    if real > 0:
        from benchmarks import decision_real

        simulated_beside = decision_real.simulated_per_kind()  # refused before anything starts
    started = time.monotonic()
    section = report(simulate(count), count, time.monotonic() - started)
    if real > 0:
        section += "\n\n" + decision_real.run(real, simulated_beside)
    else:
        section += (
            "\n\nReal-stack cross-check: not run in this write-up (`python -m benchmarks.decision_quality "
            "--real N` runs N rollouts per kind through Temporal, Envoy and Prometheus)."
        )
    return section


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=None, help="simulated rollouts per kind")
    parser.add_argument("--real", type=int, default=0, help="real-stack rollouts per kind (0: none)")
    arguments = parser.parse_args()
    result = run(arguments.rollouts, arguments.real)
    print(result)
    write_section(result)
    print(f"wrote {OUTPUT}")
