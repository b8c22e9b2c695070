"""Benchmarks: ``python -m benchmarks`` runs each module and writes ``docs/benchmarks.md``.

A benchmark is a module in :data:`MODULES` with ``run() -> str``, returning one markdown section
(its own ``##`` heading, the figures, and the settings they were measured with). Benchmarks are
measurements, not tests: nothing here asserts a time.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from importlib.metadata import version

__all__ = ["MODULES", "environment", "summary"]

MODULES = [
    "approve_latency",
    "sampling_speed",
    "compare_confidence",
    "decision_quality",
    "sequential",
    "scale",
]


def summary(values_ms: list[float]) -> str:
    """``median / p90 / max`` of milliseconds, as a table row fragment."""
    ordered = sorted(values_ms)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):.1f} | {p90:.1f} | {ordered[-1]:.1f}"


def _binary_version(name: str, *args: str) -> str:
    from sluice.stack import find_binary

    try:
        output = subprocess.run(
            [find_binary(name), *args], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except Exception as error:  # a benchmark still reports what it can
        return f"unknown ({error})"
    line = output.strip().splitlines()[-1]
    return line.split("version: ", 1)[-1]  # envoy prints its own path first


def environment() -> str:
    """The machine and versions, as a markdown list."""
    return "\n".join(
        [
            f"- machine: {os.cpu_count()} CPUs, {platform.machine()}, {platform.system()} "
            f"{platform.release()}",
            f"- Python {sys.version.split()[0]}, temporalio {version('temporalio')}, "
            f"httpx {version('httpx')}",
            f"- Temporal CLI: {_binary_version('temporal', '--version')}",
            f"- Envoy: {_binary_version('envoy', '--version')}",
        ]
    )
