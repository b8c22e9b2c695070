"""The ``sequential`` metric's test: anytime-valid evidence that the canary fails more often than stable.

Pure (standard library and pydantic only, no I/O, no clock): ``measure_metrics`` calls
:func:`observe` with each new reading of the four cumulative counters and the state it carried
from the previous measurement, and :func:`judge` turns the result into a verdict.

The test (after Lindon & Malek, "Anytime-Valid Inference for Multinomial Count Data", NeurIPS 2022,
and Lindon, Sanden & Shirikian, "Rapid Regression Detection in Software Deployments through
Sequential Testing", KDD 2022):

- *Per interval.* Between two readings the canary served ``n_c`` requests with ``x`` errors and
  stable ``n_s`` requests with ``y`` errors. Model errors as independent events whose count is
  Poisson with mean ``p_c n_c`` (``p_s n_s``), ``p`` the error rate. Given the interval's total
  ``m = x + y``, the canary's share is ``x ~ Binomial(m, θ)`` with
  ``θ(r) = r n_c / (r n_c + n_s)``, ``r = p_c / p_s`` the rate ratio. (For Bernoulli requests with
  equal rates, ``x`` given ``m`` is hypergeometric, which is dominated by that binomial in the
  convex order (Hoeffding 1963); the likelihood ratios below are convex in ``x``, so the same
  bound holds.) The split may change from one interval to the next: ``θ`` is per interval.
- *Hypotheses.* H0: ``r ≤ r0 = 1 + tolerance`` in every interval (the canary fails at most
  ``tolerance`` more often, relatively, than stable). H1: ``r > r0``.
- *Likelihood ratios.* For an alternative ``r' ≥ r0`` an interval contributes
  ``LR(r') = (θ(r')/θ(r0))^x ((1-θ(r'))/(1-θ(r0)))^(m-x)``. Under a null ``θ ≤ θ(r0)`` its
  expectation given ``m`` is ``(θ θ(r')/θ(r0) + (1-θ)(1-θ(r'))/(1-θ(r0)))^m``, linear in ``θ``
  with a slope ≥ 0 and equal to 1 at ``θ(r0)``: at most 1. So the product over intervals is a
  nonnegative supermartingale under every null, whatever the splits were.
- *Mixture.* The e-value is the average of those products over a fixed grid of alternatives
  ``r' = r0 · g`` (:data:`RATIO_GRID`, equal weights): a mixture of supermartingales is one too,
  and it starts at 1. (A conjugate mixture as in Lindon & Malek has no closed form once the
  split changes, so the prior is discrete; carrying one log-product per grid point keeps it exact.)
- *Anytime validity.* Ville's inequality: a nonnegative supermartingale starting at 1 ever
  reaches ``1/alpha`` with probability at most ``alpha``. Checking after every interval, for as
  long as the rollout lasts, cannot inflate the false-rollback probability beyond ``alpha``.
- *One-sided.* Every alternative lies above ``r0``; an interval whose canary share ``x/m`` is at
  most ``θ(r0)`` has ``LR ≤ 1`` at every grid point (the binomial likelihood falls beyond its
  mode), so a canary that errs no more than stable never gains evidence against it.

Intervals without traffic on either side (``θ`` would be 0 or 1), or with no errors at all, carry
no evidence and leave the e-value as it was; a counter that went down (a restart) skips the
interval and starts again from the new reading.
"""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from workflows._base import _Model

__all__ = [
    "RATIO_GRID",
    "Counters",
    "SequentialEvidence",
    "SequentialState",
    "interval_log_ratios",
    "judge",
    "log_e_value",
    "observe",
]

RATIO_GRID: tuple[float, ...] = tuple(2 ** (k / 2) for k in range(1, 15))
"""Alternatives as multiples of ``r0``: 1.41, 2, 2.83, ... 128 (14 points, a factor sqrt(2) apart)."""


class Counters(_Model):
    """One reading of the four cumulative counters (as Prometheus or Envoy report them)."""

    canary_errors: float
    canary_requests: float
    stable_errors: float
    stable_requests: float

    def went_down(self, earlier: Counters) -> bool:
        """Whether any counter is below ``earlier`` (a restart reset it)."""
        return (
            self.canary_errors < earlier.canary_errors
            or self.canary_requests < earlier.canary_requests
            or self.stable_errors < earlier.stable_errors
            or self.stable_requests < earlier.stable_requests
        )

    def minus(self, earlier: Counters) -> Counters:
        return Counters(
            canary_errors=self.canary_errors - earlier.canary_errors,
            canary_requests=self.canary_requests - earlier.canary_requests,
            stable_errors=self.stable_errors - earlier.stable_errors,
            stable_requests=self.stable_requests - earlier.stable_requests,
        )

    def plus(self, other: Counters) -> Counters:
        return Counters(
            canary_errors=self.canary_errors + other.canary_errors,
            canary_requests=self.canary_requests + other.canary_requests,
            stable_errors=self.stable_errors + other.stable_errors,
            stable_requests=self.stable_requests + other.stable_requests,
        )


_ZERO = Counters(canary_errors=0, canary_requests=0, stable_errors=0, stable_requests=0)


class SequentialState(_Model):
    """What one measurement carries to the next (the metric's provider state in
    ``AnalysisState.provider_states``): a few dozen numbers, whatever the rollout's length."""

    last: Counters
    """The previous reading: the next interval starts here."""
    log_products: list[float] = Field(default_factory=lambda: [0.0] * len(RATIO_GRID))
    """Per grid point of :data:`RATIO_GRID`, the log of the product of the intervals' ratios."""
    totals: Counters = _ZERO
    """Errors and requests of both versions over the intervals counted so far."""
    intervals: int = 0
    """Intervals with traffic on both sides (counted, with or without errors)."""
    resets: int = 0
    """Intervals skipped because a counter went down."""
    rejected: bool = False
    """The e-value has reached ``1/alpha``: the canary failed, and stays failed."""

    @model_validator(mode="after")
    def _same_grid(self) -> SequentialState:
        # a state from a grid of another size is not this test's: the caller starts over
        if len(self.log_products) != len(RATIO_GRID):
            raise ValueError(
                f"logProducts: {len(self.log_products)} values for {len(RATIO_GRID)} alternatives"
            )
        return self


class SequentialEvidence(_Model):
    """What a ``sequential`` measurement shows (in ``status.analysis`` and the result)."""

    e_value: float
    """The mixture e-value: the canary fails when it reaches ``threshold``."""
    threshold: float
    """``1/alpha``."""
    log_e_value: float
    canary_errors: float
    canary_requests: float
    stable_errors: float
    stable_requests: float
    intervals: int
    resets: int
    step: str
    """What this reading did: ``baseline``, ``counted``, ``no traffic``, ``counter reset``."""


def interval_log_ratios(delta: Counters, null_ratio: float) -> list[float] | None:
    """``log LR(r0·g)`` for every ``g`` of :data:`RATIO_GRID` over one interval's counts; None
    when the interval cannot carry evidence (no requests on a side)."""
    n_c, n_s = delta.canary_requests, delta.stable_requests
    if n_c <= 0 or n_s <= 0:
        return None
    x, m = delta.canary_errors, delta.canary_errors + delta.stable_errors
    if m <= 0:
        return [0.0] * len(RATIO_GRID)
    # log LR(r) = x log(r/r0) - m log((r n_c + n_s) / (r0 n_c + n_s))
    base = null_ratio * n_c + n_s
    return [x * math.log(g) - m * math.log((null_ratio * g * n_c + n_s) / base) for g in RATIO_GRID]


def log_e_value(log_products: list[float]) -> float:
    """The log of the equal-weight mixture of ``exp(log_products)`` (log-sum-exp, no overflow)."""
    top = max(log_products)
    return top + math.log(sum(math.exp(v - top) for v in log_products) / len(log_products))


def observe(
    state: SequentialState | None, reading: Counters, *, tolerance: float, alpha: float
) -> tuple[SequentialState, str]:
    """The state after ``reading`` and what the reading did (``baseline``, ``counted``,
    ``no traffic``, ``counter reset``). The first reading is only the baseline: errors before it
    are not the canary's under this analysis."""
    if state is None:
        return SequentialState(last=reading), "baseline"
    if reading.went_down(state.last):
        return state.model_copy(update={"last": reading, "resets": state.resets + 1}), "counter reset"
    delta = reading.minus(state.last)
    ratios = interval_log_ratios(delta, 1 + tolerance)
    if ratios is None:
        # still counted in the totals (they are real requests), but no evidence either way
        update = {"last": reading, "totals": state.totals.plus(delta)}
        return state.model_copy(update=update), "no traffic"
    products = [p + r for p, r in zip(state.log_products, ratios, strict=True)]
    rejected = state.rejected or log_e_value(products) >= math.log(1 / alpha)
    updated = state.model_copy(
        update={
            "last": reading,
            "log_products": products,
            "totals": state.totals.plus(delta),
            "intervals": state.intervals + 1,
            "rejected": rejected,
        }
    )
    return updated, "counted"


def evidence(state: SequentialState, step: str, alpha: float) -> SequentialEvidence:
    """The state as people read it."""
    log_e = log_e_value(state.log_products)
    return SequentialEvidence(
        e_value=math.exp(min(log_e, 700.0)),
        threshold=1 / alpha,
        log_e_value=log_e,
        canary_errors=state.totals.canary_errors,
        canary_requests=state.totals.canary_requests,
        stable_errors=state.totals.stable_errors,
        stable_requests=state.totals.stable_requests,
        intervals=state.intervals,
        resets=state.resets,
        step=step,
    )


def _rate(errors: float, requests: float) -> str:
    return f"{errors:g}/{requests:g}" + (f" ({errors / requests:.3%})" if requests > 0 else "")


def judge(state: SequentialState, step: str, alpha: float) -> tuple[bool, SequentialEvidence, str]:
    """Whether the canary failed (the e-value reached ``1/alpha``, now or earlier), the evidence,
    and the reason a person reads."""
    shown = evidence(state, step, alpha)
    counts = (
        f"canary errors {_rate(shown.canary_errors, shown.canary_requests)}, "
        f"stable {_rate(shown.stable_errors, shown.stable_requests)}"
    )
    if state.rejected:
        return (
            True,
            shown,
            f"evidence reached {shown.threshold:g} (1/alpha), now {shown.e_value:.4g}: {counts}",
        )
    return False, shown, f"evidence {shown.e_value:.4g} < {shown.threshold:g} (1/alpha), {step}: {counts}"
