"""Smoke tests of the decision benchmarks at a tiny size, so their code cannot rot; the figures
come from ``python -m benchmarks``, never from here."""

from __future__ import annotations

import importlib
import importlib.util

from benchmarks import compare_confidence, decision_quality
from benchmarks.stats import clopper_pearson, upper_bound

SEQUENTIAL = importlib.util.find_spec("workflows.sequential") is not None


def test_the_simulated_rollouts_decide_every_kind() -> None:
    results = decision_quality.simulate(2, seed=1)
    assert set(results) == {kind.name for kind in decision_quality.KINDS}
    for by_method in results.values():
        # sequential joins once workflows/sequential.py is on the branch (a marked slot until then)
        expected = {"threshold", "compare"} | ({"sequential"} if SEQUENTIAL else set())
        assert set(by_method) == expected
        for outcomes in by_method.values():
            assert len(outcomes) == 2
            assert {o.verdict for o in outcomes} <= {"promoted", "rolled back", "paused"}
    # the unmistakable kinds decide the same way whatever the noise
    for method in results["identical"]:
        assert all(o.verdict == "rolled back" for o in results["dead (all errors)"][method])
        assert all(o.verdict == "paused" for o in results["unreachable (no traffic)"][method])
        assert all(o.canary_requests == 0 for o in results["unreachable (no traffic)"][method])
    section = decision_quality.report(results, 2, 0.0)
    assert section.startswith(decision_quality.SECTION)
    assert "| identical | threshold | rolled back" in section and "| dead (all errors) | compare |" in section
    assert "sequential" in section


def test_the_confidence_simulation_counts_false_failures() -> None:
    counts = compare_confidence.false_failures(compare_confidence.latency, 2, seed=1)
    assert set(counts) == set(compare_confidence.CONFIDENCES)
    for failed, bad, total in counts.values():
        assert 0 <= failed <= 2 and 0 <= bad <= total and total == 2 * 61


def test_the_real_stack_check_imports_and_the_bounds_are_exact() -> None:
    importlib.import_module("benchmarks.decision_real")
    assert abs(upper_bound(0, 1000) - (1 - 0.05 ** (1 / 1000))) < 1e-12  # the rule of three, exactly
    low, high = clopper_pearson(5, 10)
    assert 0.187 < low < 0.188 and 0.812 < high < 0.813


def test_the_real_stack_report_sets_each_kind_beside_its_simulation() -> None:
    decision_real = importlib.import_module("benchmarks.decision_real")
    simulated = decision_quality.simulate(3, seed=2, settings=decision_real.SIMULATED)
    outcomes = [
        decision_real.Outcome(kind, method, "rolled back", 10, 4.0, "errors", "1")
        for kind, _ in decision_real.KINDS
        for method in decision_real.METHODS
    ]
    section = decision_real._report(outcomes, 1, 60.0, simulated, 3)
    rows = [line for line in section.splitlines() if line.startswith("| dead (all errors) |")]
    assert [row.split(" | ")[1] for row in rows] == decision_real.METHODS
    # real: 1 rolled back early; simulated at the same settings: every dead canary caught at 10%
    assert all("| errors 1 | 0% | 100% | 100% |" in row for row in rows)
    assert all("| 1 | 0 | 1 | 1 | - | 4.0 | errors 1 |" in row for row in rows)
