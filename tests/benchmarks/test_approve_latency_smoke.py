"""The approve → Envoy benchmark runs end to end with two rollouts open, so its code cannot rot.

It starts the local stack and the floor's worker on free ports and stops them. Nothing here
asserts a time: only that every path was measured beside the floor and the table renders.
"""

from __future__ import annotations

import pytest

from benchmarks import approve_latency


def test_the_approve_benchmark_times_the_rollout_and_the_floor_with_rollouts_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLUICE_BENCH_APPROVE_OPEN", "0,2")
    monkeypatch.setattr(approve_latency, "GATES", 2)
    section = approve_latency.run()
    for opened in ("| 0 |", "| 2 (opened in"):
        rows = [line for line in section.splitlines() if line.startswith(opened)]
        assert [row.split(" | ")[1] for row in rows] == [
            "rollout: update returned → Envoy applied",
            "floor: update returned → Envoy applied",
            "rollout: update sent → Envoy applied",
            "floor: update sent → Envoy applied",
        ], section
        assert "nan" not in "".join(rows) and rows[0].endswith("x |")
