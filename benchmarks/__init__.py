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

__all__ = ["MODULES", "SettingError", "environment", "setting_int", "setting_ints", "summary"]

MODULES = [
    "approve_latency",
    "sampling_speed",
    "compare_confidence",
    "decision_quality",
    "sequential",
    "scale",
]


class SettingError(ValueError):
    """A benchmark setting (environment variable) that is not what it must be."""


def setting_int(name: str, default: int, minimum: int = 0) -> int:
    """The whole number in environment variable ``name`` (``default`` when unset or empty)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise SettingError(f"{name}={raw!r}: expected a whole number, e.g. {name}={default}") from None
    if value < minimum:
        raise SettingError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def setting_ints(name: str, default: str, minimum: int = 0) -> list[int]:
    """The comma-separated whole numbers in environment variable ``name``, e.g. ``100,1000``."""
    raw = os.environ.get(name, "").strip() or default
    values = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            value = int(part.replace("_", ""))
        except ValueError:
            raise SettingError(
                f"{name}={raw!r}: {part!r} is not a whole number; expected e.g. {name}={default}"
            ) from None
        if value < minimum:
            raise SettingError(f"{name}={raw!r}: {value} is below {minimum}")
        values.append(value)
    if not values:
        raise SettingError(f"{name}={raw!r}: no numbers given; expected e.g. {name}={default}")
    return values


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
