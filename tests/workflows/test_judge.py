"""Pure analysis logic: spec models, verdicts, limits, and the Mann-Whitney judge.

The statistics are checked against values computed independently: scipy.stats.mannwhitneyu on
many random cases, test inversion with scipy for the confidence intervals, and the Hollander &
Wolfe example that R's ``?wilcox.test`` documents.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from scipy.stats import mannwhitneyu

from workflows.analysis import AnalysisSpec, CompareSpec, MetricSpec
from workflows.judge import (
    apply_measurements,
    assess_analysis,
    assess_comparison,
    assess_measurement,
    assess_metric,
    compare_samples,
    record_measurement,
    resume_after_inconclusive,
    tally,
)
from workflows.mannwhitney import mann_whitney_u, shift_interval, u_distribution
from workflows.measurements import (
    KEEP_MEASUREMENTS,
    AnalysisState,
    Measurement,
    MeasureResult,
    MetricResult,
    Verdict,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)

ISSUE_EXAMPLE = {
    "interval": "30s",
    "bake": "2m",
    "metrics": [
        {
            "name": "error-rate",
            "prometheus": {
                "address": "http://prometheus:9090",
                "query": 'sum(rate(istio_requests_total{destination_service_name="reviews-v2",'
                'response_code=~"5.."}[1m])) / sum(rate(istio_requests_total'
                '{destination_service_name="reviews-v2"}[1m]))',
            },
            "max": 0.01,
            "failureLimit": 1,
            "inconclusiveLimit": 3,
            "consecutiveErrorLimit": 4,
        },
        {
            "name": "canary-latency",
            "envoy": {
                "admin": "http://127.0.0.1:9901",
                "cluster": "reviews-v2",
                "measure": "p99LatencyMs",
            },
            "max": 250,
        },
        {
            "name": "errors-vs-stable",
            "compare": {
                "prometheus": {
                    "address": "http://prometheus:9090",
                    "query": "sum(rate(istio_requests_total{"
                    'destination_service_name="{{destination}}",response_code=~"5.."}[1m]))',
                },
                "direction": "increase",
                "tolerance": 0.25,
            },
        },
    ],
}


def metric(**overrides: object) -> MetricSpec:
    data: dict[str, object] = {
        "name": "error-rate",
        "prometheus": {"address": "http://prom:9090", "query": "up"},
        "max": 0.01,
    }
    data.update(overrides)
    return MetricSpec.model_validate(data)


def measurement(verdict: Verdict, value: float | None = None, name: str = "error-rate") -> Measurement:
    return Measurement(metric=name, value=value, verdict=verdict, message=verdict.lower(), at=T0)


# --- spec -------------------------------------------------------------------------------


def test_issue_example_parses_with_defaults() -> None:
    spec = AnalysisSpec.model_validate(ISSUE_EXAMPLE)
    assert spec.interval == timedelta(seconds=30)
    assert spec.bake == timedelta(minutes=2)
    error_rate, latency, versus = spec.metrics
    assert (error_rate.kind, latency.kind, versus.kind) == ("prometheus", "envoy", "compare")
    assert error_rate.failure_limit == 1 and error_rate.inconclusive_limit == 3
    assert latency.failure_limit == 0  # Argo's default: the first failure rolls back
    assert latency.consecutive_error_limit == 4
    assert versus.compare is not None
    assert versus.compare.confidence == 0.99 and versus.compare.direction == "increase"
    # round-trips through its own camelCase JSON (what Temporal stores)
    assert AnalysisSpec.model_validate_json(spec.model_dump_json()) == spec
    assert '"failureLimit":1' in spec.model_dump_json()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"prometheus": {"address": "http://p:9090", "query": "up", "bearerToken": "s3cr3t"}},
            "must not be written in the spec",
        ),
        (
            {
                "prometheus": {
                    "address": "http://p:9090",
                    "query": "up",
                    "bearerTokenEnv": "A",
                    "bearerTokenFile": "/t",
                }
            },
            "at most one",
        ),
        (
            {"envoy": {"admin": "http://e:9901", "cluster": "c", "measure": "errorRate"}},
            "exactly one of",
        ),
        ({"max": None}, "set max and/or min"),
        ({"min": 2, "max": 1}, "must not exceed"),
        ({"failureLimt": 1}, "Extra inputs are not permitted"),
        ({"prometheus": {"address": "prom:9090", "query": "up"}}, "http:// or https://"),
    ],
)
def test_metric_spec_refuses(change: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError) as error:
        metric(**change)
    assert expected in str(error.value)
    assert "s3cr3t" not in str(error.value).split("input_value")[0]


def test_compare_needs_the_destination_placeholder_and_no_thresholds() -> None:
    compare = {"prometheus": {"address": "http://p:9090", "query": "sum(up)"}}
    with pytest.raises(ValidationError, match=r"\{\{destination\}\}"):
        MetricSpec.model_validate({"name": "c", "compare": compare})
    good = {"prometheus": {"address": "http://p:9090", "query": 'up{job="{{destination}}"}'}}
    with pytest.raises(ValidationError, match="takes no thresholds"):
        MetricSpec.model_validate({"name": "c", "compare": good, "max": 1})
    assert MetricSpec.model_validate({"name": "c", "compare": good}).compare is not None


def test_analysis_spec_refuses_duplicate_names_and_tiny_intervals() -> None:
    one = {"name": "a", "prometheus": {"address": "http://p:9090", "query": "up"}, "max": 1}
    with pytest.raises(ValidationError, match="appears twice"):
        AnalysisSpec.model_validate({"metrics": [one, one]})
    with pytest.raises(ValidationError, match="at least 1s"):
        AnalysisSpec.model_validate({"interval": "100ms", "metrics": [one]})
    with pytest.raises(ValidationError, match="metrics"):
        AnalysisSpec.model_validate({"metrics": []})


# --- one measurement --------------------------------------------------------------------


def test_assess_measurement() -> None:
    bounded = metric(min=0.5, max=2)
    assert assess_measurement(bounded, 1.0).verdict == "Successful"
    assert assess_measurement(bounded, 2.0).verdict == "Successful"  # the bound itself is fine
    high = assess_measurement(bounded, 2.5)
    assert high.verdict == "Failed" and high.message == "2.5 > max 2"
    assert assess_measurement(bounded, 0.1) == ("Failed", "0.1 < min 0.5")
    assert assess_measurement(bounded, None) == ("Inconclusive", "no data")
    assert assess_measurement(bounded, math.nan).verdict == "Inconclusive"
    assert assess_measurement(bounded, math.inf).verdict == "Failed"
    assert assess_measurement(bounded, 1.0, error="prometheus down") == ("Error", "prometheus down")


# --- limits -----------------------------------------------------------------------------


def test_failure_limit_tolerates_exactly_the_limit() -> None:
    spec = metric(failureLimit=1)
    assert assess_metric(spec, [measurement("Failed", 0.2)]) == "Running"
    assert assess_metric(spec, [measurement("Failed", 0.2), measurement("Successful", 0)]) == "Running"
    history = [measurement("Failed", 0.2), measurement("Successful", 0), measurement("Failed", 0.3)]
    assert assess_metric(spec, history) == "Failed"  # failures count in total, not in a row
    assert assess_metric(metric(), [measurement("Failed", 0.2)]) == "Failed"  # default 0


def test_consecutive_errors_fail_only_in_a_row() -> None:
    spec = metric()  # consecutiveErrorLimit 4
    assert assess_metric(spec, [measurement("Error")] * 4) == "Running"
    assert assess_metric(spec, [measurement("Error")] * 5) == "Error"
    broken = [measurement("Error")] * 4 + [measurement("Successful", 0)] + [measurement("Error")] * 4
    result = tally(spec, broken)
    assert result.phase == "Running" and result.error == 8 and result.consecutive_error == 4
    # an inconclusive reading also breaks the streak: the provider answered
    assert (
        assess_metric(
            spec,
            [measurement("Error")] * 4 + [measurement("Inconclusive")] + [measurement("Error")],
        )
        != "Error"
    )


def test_inconclusive_limit_pauses_and_resume_forgets() -> None:
    spec = metric(inconclusiveLimit=3)
    assert assess_metric(spec, [measurement("Inconclusive")] * 3) == "Running"
    assert assess_metric(spec, [measurement("Inconclusive")] * 4) == "Inconclusive"
    assert assess_metric(metric(), [measurement("Inconclusive")]) == "Inconclusive"  # default 0
    # failing outranks waiting for a person
    mixed = [measurement("Inconclusive")] * 4 + [measurement("Failed", 1.0)]
    assert assess_metric(spec, mixed) == "Failed"

    analysis = AnalysisSpec(metrics=[spec])
    state = AnalysisState(metrics={spec.name: tally(spec, [measurement("Inconclusive")] * 4)})
    outcome = assess_analysis(analysis, state)
    assert outcome.phase == "Inconclusive" and outcome.metric == "error-rate"
    assert "inconclusiveLimit 3" in outcome.message
    resumed = resume_after_inconclusive(state)
    assert assess_analysis(analysis, resumed).phase == "Running"
    assert resumed.metrics["error-rate"].count == 4  # the record stays, only the count resets


def test_record_keeps_counters_and_a_bounded_window() -> None:
    spec = metric(failureLimit=1000)
    result = MetricResult(name=spec.name)
    for index in range(KEEP_MEASUREMENTS + 15):
        verdict: Verdict = "Failed" if index % 3 == 0 else "Successful"
        result = record_measurement(spec, result, measurement(verdict, float(index)))
    assert result.count == KEEP_MEASUREMENTS + 15
    assert result.failed == 12 and result.successful == KEEP_MEASUREMENTS + 3
    assert len(result.measurements) == KEEP_MEASUREMENTS
    assert result.measurements[-1].value == KEEP_MEASUREMENTS + 14  # newest last
    assert result.phase == "Running"


def test_analysis_failure_names_metric_value_and_threshold() -> None:
    analysis = AnalysisSpec.model_validate(ISSUE_EXAMPLE)
    state = AnalysisState()
    snapshot = {"at": T0.isoformat(), "completed": 10.0, "errors": 1.0}  # opaque to the workflow
    for round_value in (0.2, 0.25):
        error_rate = analysis.metric("error-rate")
        verdict, message = assess_measurement(error_rate, round_value)
        measured = MeasureResult(
            measurements=[
                Measurement(metric="error-rate", value=round_value, verdict=verdict, message=message, at=T0),
                Measurement(metric="canary-latency", value=12.0, verdict="Successful", at=T0),
                Measurement(metric="from-an-older-spec", value=1.0, verdict="Failed", at=T0),
            ],
            provider_states={"canary-latency": snapshot},
        )
        state = apply_measurements(analysis, state, measured)
    assert state.rounds == 2 and state.provider_states["canary-latency"] == snapshot
    assert "from-an-older-spec" not in state.metrics
    outcome = assess_analysis(analysis, state)
    assert outcome.phase == "Failed" and outcome.metric == "error-rate"
    assert "error-rate" in outcome.message and "0.25 > max 0.01" in outcome.message
    assert "failureLimit 1" in outcome.message
    # the whole state survives continue-as-new as JSON
    assert AnalysisState.model_validate_json(state.model_dump_json()) == state


def test_errors_past_the_limit_fail_the_analysis() -> None:
    analysis = AnalysisSpec(metrics=[metric()])
    state = AnalysisState()
    for _ in range(5):
        down = Measurement(
            metric="error-rate",
            value=None,
            verdict="Error",
            message="prometheus http://prom:9090: unreachable",
            at=T0,
        )
        state = apply_measurements(analysis, state, MeasureResult(measurements=[down]))
    outcome = assess_analysis(analysis, state)
    assert outcome.phase == "Failed"
    assert "5 provider errors in a row > consecutiveErrorLimit 4" in outcome.message
    assert "unreachable" in outcome.message


# --- Mann-Whitney against scipy and published values --------------------------------------

# Hollander & Wolfe (1973), p. 69: the example of R's ?wilcox.test
HW_X = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
HW_Y = [1.15, 0.88, 0.90, 0.74, 1.21]


def test_published_example() -> None:
    exact = mann_whitney_u(HW_X, HW_Y, alternative="greater")
    assert exact.u == 35 and exact.method == "exact"
    assert exact.p_value == pytest.approx(0.1272, abs=5e-5)
    large_sample = mann_whitney_u(HW_X, HW_Y, alternative="greater", method="normal", continuity=False)
    assert large_sample.p_value == pytest.approx(0.1103, abs=5e-5)
    # R: wilcox.test(x, y, conf.int = TRUE) -> 95% CI -0.15 0.76, difference in location 0.305
    interval = shift_interval(HW_X, HW_Y)
    assert (interval.lower, interval.upper, interval.estimate) == pytest.approx((-0.15, 0.76, 0.305))


def test_u_distribution_counts_every_ordering() -> None:
    for m, n in [(1, 1), (3, 4), (7, 5), (12, 12)]:
        counts = u_distribution(m, n)
        assert sum(counts) == math.comb(m + n, m)
        assert counts == counts[::-1]  # symmetric around m*n/2
    assert u_distribution(2, 2) == (1, 1, 2, 1, 1)


@pytest.mark.parametrize("seed", range(8))
def test_p_values_match_scipy(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        m, n = rng.randint(2, 40), rng.randint(2, 40)
        shift = rng.choice([0.0, 0.3, 1.0])
        # continuous values: no ties, exact and normal both apply
        x = [rng.gauss(shift, 1) for _ in range(m)]
        y = [rng.gauss(0, 1) for _ in range(n)]
        # rounded values: many ties, normal approximation with tie correction
        xt = [round(v, 1) for v in x]
        yt = [round(v, 1) for v in y]
        for alternative in ("two-sided", "greater", "less"):
            ours = mann_whitney_u(x, y, alternative, method="exact")
            theirs = mannwhitneyu(x, y, alternative=alternative, method="exact")
            assert ours.u == theirs.statistic
            assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-12)
            for continuity in (True, False):
                ours = mann_whitney_u(xt, yt, alternative, method="normal", continuity=continuity)
                theirs = mannwhitneyu(
                    xt, yt, alternative=alternative, method="asymptotic", use_continuity=continuity
                )
                assert ours.u == theirs.statistic
                assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-12)


def _inside(x: list[float], y: list[float], shift: float, method: str, alpha: float) -> bool:
    """Test inversion with scipy: a shift is in the interval when the test does not reject it."""
    moved = [v - shift for v in x]
    return bool(mannwhitneyu(moved, y, alternative="two-sided", method=method).pvalue >= alpha)


@pytest.mark.parametrize("seed", range(6))
def test_confidence_intervals_invert_scipys_test(seed: int) -> None:
    rng = random.Random(100 + seed)
    alpha = 0.05
    for _ in range(25):
        m, n = rng.randint(5, 30), rng.randint(5, 30)
        x = [rng.gauss(rng.choice([0, 0.5, 2]), 1) for _ in range(m)]
        y = [rng.gauss(0, 1) for _ in range(n)]

        exact = shift_interval(x, y, 1 - alpha, method="exact")
        assert exact.achievable
        diffs = sorted(a - b for a in x for b in y)
        k = diffs.index(exact.lower)
        assert _inside(x, y, (diffs[k] + diffs[k + 1]) / 2, "exact", alpha)
        assert not _inside(x, y, (diffs[k - 1] + diffs[k]) / 2, "exact", alpha)
        k = diffs.index(exact.upper)
        assert _inside(x, y, (diffs[k - 1] + diffs[k]) / 2, "exact", alpha)
        assert not _inside(x, y, (diffs[k] + diffs[k + 1]) / 2, "exact", alpha)
        assert exact.estimate == pytest.approx(
            sorted(diffs)[len(diffs) // 2]
            if len(diffs) % 2
            else (diffs[len(diffs) // 2 - 1] + diffs[len(diffs) // 2]) / 2
        )

        xt, yt = [round(v, 1) for v in x], [round(v, 1) for v in y]
        normal = shift_interval(xt, yt, 1 - alpha)
        assert normal.method == "normal" and normal.lower <= normal.estimate <= normal.upper
        eps = 1e-6
        for edge, outward in ((normal.lower, -eps), (normal.upper, eps)):
            if edge in (min(xt) - max(yt), max(xt) - min(yt)):
                continue  # clamped to the range of differences, as R does
            assert _inside(xt, yt, edge - outward, "asymptotic", alpha)
            assert not _inside(xt, yt, edge + outward, "asymptotic", alpha)


def test_exact_interval_reports_an_unreachable_level() -> None:
    interval = shift_interval([5.0, 6.0, 7.0], [1.0, 2.0, 3.0], 0.95)
    assert not interval.achievable  # 3 vs 3: the smallest two-sided p is 0.1
    assert shift_interval([5.0, 6.0, 7.0, 8.0, 9.0], [1.0, 2.0, 3.0, 4.0, 4.5], 0.95).achievable


# --- Kayenta's classification -----------------------------------------------------------


def compare(**overrides: object) -> CompareSpec:
    data: dict[str, object] = {
        "prometheus": {"address": "http://p:9090", "query": 'x{d="{{destination}}"}'},
    }
    data.update(overrides)
    return CompareSpec.model_validate(data)


def test_kayenta_classification() -> None:
    rng = random.Random(7)
    healthy = [rng.gauss(0.01, 0.002) for _ in range(12)]
    same = [rng.gauss(0.01, 0.002) for _ in range(12)]
    broken = [rng.gauss(0.2, 0.02) for _ in range(12)]

    assert compare_samples(healthy, same, compare()).classification == "Pass"
    high = compare_samples(healthy, broken, compare())
    assert high.classification == "High"
    assert high.lower is not None and high.lower > 0.25 * abs(high.estimate or 0)
    assert high.p_value is not None and high.p_value < 0.001
    assert compare_samples(broken, healthy, compare()).classification == "Low"

    # direction decides which classification fails
    assert assess_comparison(compare(direction="increase"), high).verdict == "Failed"
    assert assess_comparison(compare(direction="decrease"), high).verdict == "Successful"
    low = compare_samples(broken, healthy, compare())
    assert assess_comparison(compare(direction="increase"), low).verdict == "Successful"
    assert assess_comparison(compare(direction="either"), low).verdict == "Failed"

    # Kayenta's effect size: a significant but small increase passes under allowedIncrease
    slightly = [v * 1.3 for v in healthy]
    assert compare_samples(healthy, slightly, compare()).classification == "High"
    assert compare_samples(healthy, slightly, compare(allowedIncrease=1.5)).classification == "Pass"


def test_kayenta_edge_cases() -> None:
    zeros = [0.0] * 12
    # stable never errs, canary errs at a steady 20%: Kayenta's noise trick, without noise
    steady = compare_samples(zeros, [0.2] * 12, compare())
    assert steady.classification == "High" and steady.estimate == pytest.approx(0.2)
    assert compare_samples(zeros, zeros, compare()).classification == "Pass"
    nodata = compare_samples(zeros, [0.2] * 3, compare())
    assert nodata.classification == "Nodata" and "minSamples 5" in nodata.reason
    assert assess_comparison(compare(), nodata).verdict == "Inconclusive"
    # 3 vs 3 cannot reach 95% at all: no verdict rather than a weaker one
    few = compare_samples([0.0] * 3, [0.2] * 3, compare(minSamples=3, window="1m"))
    assert few.classification == "Nodata" and "confidence" in few.reason
    # NaN points (no traffic in that step) are dropped, not compared
    assert compare_samples([math.nan] * 12, [0.1] * 12, compare()).classification == "Nodata"


def test_pure_modules_import_nothing_a_workflow_sandbox_refuses() -> None:
    code = (
        "import sys, workflows.analysis, workflows.judge, workflows.mannwhitney, "
        "workflows.measurements\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'httpx', 'scipy', 'numpy', 'temporalio', 'activities', 'kubernetes'})\n"
        "print(','.join(bad))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == ""


# -- what the peers' test cases found ---------------------------------------------------------


def test_a_rise_from_zero_errors_is_not_excused_by_allowed_increase() -> None:
    # Kayenta fails it; the mean ratio used to be set to 1.0 when stable had no errors, so any
    # allowedIncrease above 1 let the canary pass.
    zeros = [0.0] * 12
    for canary in ([0.2] * 12, [0.1, 0.2, 0.3] * 4):
        judged = compare_samples(zeros, canary, compare(allowedIncrease=1.5, direction="increase"))
        assert judged.classification == "High", judged.reason
        assert judged.mean_ratio is None
        assert assess_comparison(compare(direction="increase"), judged).verdict == "Failed"
    # both at zero: the ratio is 1 and nothing moved
    assert compare_samples(zeros, zeros, compare(allowedIncrease=1.5)).mean_ratio == 1.0
    # a rise from zero that the rank test cannot tell from noise still passes
    rare = compare_samples(zeros, [0.0] * 11 + [0.1], compare(allowedIncrease=1.5))
    assert rare.classification == "Pass" and rare.mean_ratio is None


def zero_heavy(
    seed: int, points: int = 180, stable_errors: int = 10, canary_errors: int = 44
) -> tuple[list[float], list[float]]:
    """Error ratios of a quiet service: stable errs in ``stable_errors`` of ``points`` steps."""
    rng = random.Random(seed)
    stable = [0.0] * (points - stable_errors)
    stable += [round(rng.uniform(0.005, 0.03), 4) for _ in range(stable_errors)]
    canary = [0.0] * (points - canary_errors)
    canary += [round(rng.uniform(0.005, 0.03), 4) for _ in range(canary_errors)]
    rng.shuffle(stable)
    rng.shuffle(canary)
    return stable, canary


@pytest.mark.parametrize("seed", range(12))
def test_zero_heavy_errors_are_judged_by_the_rank_test_not_rounding(seed: int) -> None:
    # The Hodges-Lehmann interval of mostly-zero data collapses onto 0; its ends came back as
    # +-1e-13 from the bisection and decided High or Pass by the sign of that noise (about half
    # of these seeds passed). Kayenta says High.
    stable, canary = zero_heavy(seed)
    judged = compare_samples(stable, canary, compare(window="1h", direction="increase"))
    assert judged.p_value == pytest.approx(mannwhitneyu(canary, stable).pvalue, rel=1e-6)
    assert judged.p_value is not None and judged.p_value < 1e-5
    assert judged.classification == "High", judged.reason
    assert (judged.estimate, judged.lower, judged.upper) == (0.0, 0.0, 0.0)
    assert "rank test decides" in judged.reason
    # the other way round it is Low, and identical-rate data passes
    assert compare_samples(canary, stable, compare(window="1h")).classification == "Low"
    assert compare_samples(stable, zero_heavy(seed + 100)[0], compare(window="1h")).classification == "Pass"


def test_the_peers_zero_heavy_case() -> None:
    # mostly zeros, the canary with about 4.4 times the errors, p about 1e-9 (Pass before the fix)
    stable, canary = zero_heavy(12, points=240, stable_errors=15, canary_errors=66)
    judged = compare_samples(stable, canary, compare(window="2h", direction="increase"))
    assert judged.mean_ratio == pytest.approx(4.4, abs=0.1)
    assert judged.p_value is not None and judged.p_value < 1e-8
    assert judged.classification == "High"
    # Kayenta's effect size still applies: 4.4 times is under allowedIncrease 5
    assert compare_samples(stable, canary, compare(window="2h", allowedIncrease=5)).classification == "Pass"
