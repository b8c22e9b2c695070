"""The ``sequential`` metric's test as a pure function (:mod:`workflows.sequential`) and its spec."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from workflows.analysis import AnalysisSpec
from workflows.carried import RolloutState
from workflows.judge import apply_measurements
from workflows.measurements import Measurement, MeasureResult
from workflows.sequential import (
    RATIO_GRID,
    Counters,
    SequentialState,
    interval_log_ratios,
    judge,
    log_e_value,
    observe,
)

ALPHA = 0.01


def counters(ce: float, cr: float, se: float, sr: float) -> Counters:
    return Counters(canary_errors=ce, canary_requests=cr, stable_errors=se, stable_requests=sr)


def run(readings: list[Counters], tolerance: float = 0.1) -> tuple[SequentialState, list[str]]:
    state, step = observe(None, readings[0], tolerance=tolerance, alpha=ALPHA)
    steps = [step]
    for reading in readings[1:]:
        state, step = observe(state, reading, tolerance=tolerance, alpha=ALPHA)
        steps.append(step)
    return state, steps


def binomial_pmf(x: int, m: int, theta: float) -> float:
    return math.comb(m, x) * theta**x * (1 - theta) ** (m - x)


def theta(ratio: float, n_c: float, n_s: float) -> float:
    return ratio * n_c / (ratio * n_c + n_s)


def e_value_by_hand(intervals: list[tuple[int, int, int, int]], null_ratio: float) -> float:
    """The mixture over the grid of products of binomial likelihood ratios, from the pmf."""
    total = 0.0
    for g in RATIO_GRID:
        product = 1.0
        for x, n_c, y, n_s in intervals:
            m = x + y
            product *= binomial_pmf(x, m, theta(null_ratio * g, n_c, n_s)) / binomial_pmf(
                x, m, theta(null_ratio, n_c, n_s)
            )
        total += product
    return total / len(RATIO_GRID)


def test_the_first_reading_is_only_the_baseline() -> None:
    state, steps = run([counters(50, 1000, 3, 9000)])
    assert steps == ["baseline"] and state.intervals == 0
    assert log_e_value(state.log_products) == 0
    assert state.totals == counters(0, 0, 0, 0)


def test_exact_small_cases_match_the_binomial_likelihood_ratios() -> None:
    intervals = [(3, 100, 1, 100), (2, 20, 5, 180), (0, 10, 4, 90), (1, 50, 0, 50)]
    readings = [counters(0, 0, 0, 0)]
    for x, n_c, y, n_s in intervals:
        last = readings[-1]
        readings.append(
            counters(
                last.canary_errors + x,
                last.canary_requests + n_c,
                last.stable_errors + y,
                last.stable_requests + n_s,
            )
        )
    for tolerance in (0.0, 0.1, 0.5):
        state, steps = run(readings, tolerance)
        assert steps == ["baseline"] + ["counted"] * 4
        expected = e_value_by_hand(intervals, 1 + tolerance)
        assert math.exp(log_e_value(state.log_products)) == pytest.approx(expected, rel=1e-9)
    assert state.totals == counters(6, 180, 10, 420) and state.intervals == 4


def test_one_interval_all_canary_errors_on_an_even_split() -> None:
    # 3 errors, all the canary's, 100 requests each, tolerance 0: LR(g) = (2g / (g + 1))^3
    ratios = interval_log_ratios(counters(3, 100, 0, 100), 1.0)
    assert ratios == pytest.approx([3 * math.log(2 * g / (g + 1)) for g in RATIO_GRID])


@pytest.mark.parametrize("null_theta_scale", [1.0, 0.8, 0.3, 0.0])
def test_each_interval_is_a_fair_or_unfavourable_bet_under_every_null(null_theta_scale: float) -> None:
    # E[LR(g)] over x ~ Binomial(m, theta) is 1 at theta0 and below 1 for theta < theta0
    n_c, n_s, m, null_ratio = 120.0, 380.0, 12, 1.1
    theta0 = theta(null_ratio, n_c, n_s)
    actual = theta0 * null_theta_scale
    for index in range(len(RATIO_GRID)):
        expectation = 0.0
        for x in range(m + 1):
            ratios = interval_log_ratios(counters(x, n_c, m - x, n_s), null_ratio)
            assert ratios is not None
            expectation += binomial_pmf(x, m, actual) * math.exp(ratios[index])
        if null_theta_scale == 1.0:
            assert expectation == pytest.approx(1.0, rel=1e-9)
        else:
            assert expectation < 1.0


def test_more_canary_errors_never_lower_the_evidence() -> None:
    for m in (1, 5, 40):
        values = [
            log_e_value(interval_log_ratios(counters(x, 200, m - x, 800), 1.1) or []) for x in range(m + 1)
        ]
        assert values == sorted(values) and values[-1] > values[0]
    # the same stable errors, more canary errors
    values = [log_e_value(interval_log_ratios(counters(x, 200, 7, 800), 1.1) or []) for x in range(30)]
    assert values == sorted(values)


def test_a_canary_with_fewer_errors_never_fails() -> None:
    rng = random.Random(7)
    state, _ = observe(None, counters(0, 0, 0, 0), tolerance=0.1, alpha=ALPHA)
    total = counters(0, 0, 0, 0)
    for _ in range(2000):
        n_c = rng.randint(0, 400)
        n_s = rng.randint(0, 400)
        y = rng.randint(0, 40)
        # at most its share of the interval's errors (under the null ratio 1.1): LR <= 1
        m = y + rng.randint(0, 40)
        x = min(m, math.floor(theta(1.1, n_c, n_s) * m)) if n_s > 0 else 0
        total = total.plus(counters(x, n_c, m - x, n_s))
        state, _ = observe(state, total, tolerance=0.1, alpha=ALPHA)
        assert log_e_value(state.log_products) <= 1e-12
    assert not judge(state, "counted", ALPHA)[0]


def test_a_counter_that_went_down_skips_the_interval_and_restarts_from_there() -> None:
    state, steps = run(
        [
            counters(0, 0, 0, 0),
            counters(5, 100, 1, 900),
            counters(1, 20, 1, 900),  # the canary restarted: its counters began again
            counters(3, 120, 2, 1800),
        ]
    )
    assert steps == ["baseline", "counted", "counter reset", "counted"]
    assert state.resets == 1 and state.intervals == 2
    assert state.totals == counters(7, 200, 2, 1800)
    expected = e_value_by_hand([(5, 100, 1, 900), (2, 100, 1, 900)], 1.1)
    assert math.exp(log_e_value(state.log_products)) == pytest.approx(expected)


def test_no_traffic_and_no_errors_carry_no_evidence() -> None:
    state, steps = run(
        [
            counters(0, 0, 0, 0),
            counters(0, 0, 4, 500),  # no canary traffic
            counters(3, 0, 4, 500),  # errors without requests (a scrape between queries): skipped
            counters(3, 0, 4, 500),  # nothing at all
            counters(3, 300, 4, 800),  # traffic, no errors
        ]
    )
    assert steps == ["baseline", "no traffic", "no traffic", "no traffic", "counted"]
    assert state.log_products == [0.0] * len(RATIO_GRID)
    assert state.intervals == 1 and state.totals == counters(3, 300, 4, 800)


def test_the_verdict_fails_at_1_over_alpha_and_stays_failed() -> None:
    state, _ = run([counters(0, 0, 0, 0), counters(2, 100, 1, 900)])
    failed, evidence, message = judge(state, "counted", ALPHA)
    assert not failed and evidence.e_value < 100 and evidence.threshold == 100
    assert "< 100 (1/alpha)" in message and "canary errors 2/100 (2.000%)" in message
    state, _ = observe(state, counters(22, 200, 2, 1800), tolerance=0.1, alpha=ALPHA)
    failed, evidence, message = judge(state, "counted", ALPHA)
    assert failed and evidence.e_value >= 100 and "reached 100" in message
    # later clean intervals lower the e-value, but the test has rejected: it stays failed
    for step in range(1, 30):
        state, _ = observe(
            state, counters(22, 200 + 100 * step, 2 + 9 * step, 1800 + 900 * step), tolerance=0.1, alpha=ALPHA
        )
    assert state.rejected and judge(state, "counted", ALPHA)[0]


def test_the_state_round_trips_through_json() -> None:
    state, _ = run([counters(0, 0, 0, 0), counters(2, 100, 1, 900), counters(1, 5, 0, 10)])
    again = SequentialState.model_validate(state.model_dump(mode="json"))
    assert again == state
    with pytest.raises(ValidationError, match="logProducts"):
        SequentialState.model_validate({**state.model_dump(mode="json"), "logProducts": [0.0]})


def metric(**sequential: Any) -> dict[str, Any]:
    return {"name": "errors-vs-stable", "sequential": sequential}


PROMETHEUS = {
    "prometheus": {"address": "http://prometheus:9090/"},
    "canary": {"errors": "sum(e{v='2'}) or vector(0)", "requests": "sum(r{v='2'})"},
    "stable": {"errors": "sum(e{v='1'}) or vector(0)", "requests": "sum(r{v='1'})"},
}


def test_a_sequential_metric_with_defaults() -> None:
    spec = AnalysisSpec.model_validate({"metrics": [metric(**PROMETHEUS)]})
    sequential = spec.metrics[0].sequential
    assert sequential is not None and spec.metrics[0].kind == "sequential"
    assert sequential.alpha == 0.01 and sequential.tolerance == 0.1
    assert sequential.prometheus is not None and sequential.prometheus.address == "http://prometheus:9090"
    assert spec.metrics[0].threshold() == "evidence < 100 (alpha 0.01, tolerance 0.1)"
    envoy = AnalysisSpec.model_validate({"metrics": [metric(envoy={"admin": "http://127.0.0.1:9901"})]})
    assert envoy.metrics[0].kind == "sequential"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({**metric(**PROMETHEUS), "max": 0.05}, "max/min: sequential judges against stable"),
        ({**metric(**PROMETHEUS), "failureLimit": 2}, "failureLimit: sequential fails once"),
        (
            {**metric(**PROMETHEUS), "prometheus": {"address": "http://p:9090", "query": "up"}},
            "exactly one of",
        ),
        (metric(**{**PROMETHEUS, "alpha": 0}), "sequential.alpha"),
        (metric(**{**PROMETHEUS, "alpha": 1.5}), "sequential.alpha"),
        (metric(**{**PROMETHEUS, "tolerance": -0.1}), "sequential.tolerance"),
        (metric(prometheus={"address": "http://p:9090"}), "canary, stable: required with prometheus"),
        (metric(**{**PROMETHEUS, "stable": None}), "stable: required with prometheus"),
        (metric(**{**PROMETHEUS, "canary": {"errors": "x"}}), "sequential.canary.requests"),
        (
            metric(envoy={"admin": "http://127.0.0.1:9901"}, canary=PROMETHEUS["canary"]),
            "canary: envoy reads the clusters",
        ),
        (metric(**PROMETHEUS, envoy={"admin": "http://127.0.0.1:9901"}), "exactly one of prometheus, envoy"),
        (metric(canary=PROMETHEUS["canary"]), "exactly one of prometheus, envoy, got none"),
        (metric(**{**PROMETHEUS, "prometheus": {"address": "http://p", "token": "x"}}), "token: a secret"),
        (metric(**{**PROMETHEUS, "prometheus": {"address": "ftp://p"}}), "sequential.prometheus.address"),
    ],
)
def test_bad_sequential_specs_are_refused_naming_the_field(entry: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AnalysisSpec.model_validate({"metrics": [entry]})
    text = str(caught.value).replace("\n", " ").replace("metrics.0.", "")
    assert expected in text, text


def test_the_evidence_is_carried_through_continue_as_new() -> None:
    spec = AnalysisSpec.model_validate({"metrics": [metric(**PROMETHEUS)]})
    state, steps = run([counters(0, 0, 0, 0), counters(4, 100, 3, 900)])
    _, evidence, message = judge(state, steps[-1], ALPHA)
    measured = MeasureResult(
        measurements=[
            Measurement(
                metric="errors-vs-stable",
                value=evidence.e_value,
                verdict="Successful",
                message=message,
                at=datetime(2026, 12, 5, tzinfo=UTC),
                sequential=evidence,
            )
        ],
        provider_states={"errors-vs-stable": state.model_dump(mode="json")},
    )
    carried = RolloutState.model_validate(
        {"status": {"rolloutId": "rollout-default-reviews", "service": "reviews", "namespace": "default"}}
    )
    carried.analysis_state = apply_measurements(spec, carried.analysis_state, measured)
    again = RolloutState.model_validate_json(carried.model_dump_json())
    assert SequentialState.model_validate(again.analysis_state.provider_states["errors-vs-stable"]) == state
    kept = again.analysis_state.metrics["errors-vs-stable"].measurements[-1]
    assert kept.sequential == evidence
