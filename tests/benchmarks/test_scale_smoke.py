"""The scale benchmark runs end to end on a tiny load (N=3), so its code cannot rot.

It starts its own dev server, ``python -m worker`` and the floor's worker on free ports and stops
them. Nothing here asserts a time: only that every figure was measured and the tables render.
"""

from __future__ import annotations

import pytest

from benchmarks import MODULES, scale
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


def test_a_size_the_machine_cannot_hold_is_reported_where_it_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue asks for N "as far as the machine allows, saying where it stopped and why"."""

    class NoStack:
        def __init__(self, state: object) -> None:
            pass

        def __enter__(self) -> NoStack:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    async def out_of_time(stack: object, n: int, complete: int | None = None) -> None:
        raise TimeoutError(f"3 of {n} at the gate")

    async def no_throughput(stack: object, concurrency: int, total: int) -> tuple[float, float, float]:
        return 1.0, 2.0, 3.0

    monkeypatch.setattr(scale, "ScaleStack", NoStack)
    monkeypatch.setattr(scale, "measure_open", out_of_time)
    monkeypatch.setattr(scale, "measure_throughput", no_throughput)
    section = scale.run([10_000], total_per_concurrency=2)
    assert "**Stopped at N = 10,000** after 0 min: TimeoutError: 3 of 10000 at the gate" in section
    assert "| 100 | 2 | 1.0 | 2.0 | 2.0x | 3.0 ms |" in section
