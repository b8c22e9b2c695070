"""The scale benchmark runs end to end on a tiny load (N=3), so its code cannot rot.

It starts its own dev server, ``python -m worker`` and the floor's worker on free ports and stops
them. Nothing here asserts a time: only that every figure was measured and the tables render.
"""

from __future__ import annotations

from benchmarks import MODULES
from benchmarks.scale import run


def test_the_scale_benchmark_measures_three_open_rollouts_and_the_floor() -> None:
    assert "scale" in MODULES
    section = run([3], total_per_concurrency=2)
    rows = [line for line in section.splitlines() if line.startswith("| 3 |")]
    assert len(rows) == 1, section
    assert "nan" not in rows[0]
    full = [
        line for line in section.splitlines() if line.startswith(("| 1 | 2 |", "| 10 | 2 |", "| 100 | 2 |"))
    ]
    assert len(full) == 3, section
