"""Benchmark settings: a bad environment variable is named in a one-line error, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import SettingError, setting_int, setting_ints

ROOT = Path(__file__).resolve().parents[2]


def test_unset_or_empty_gives_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_BENCH_TEST", raising=False)
    assert setting_int("SLUICE_BENCH_TEST", 7) == 7
    assert setting_ints("SLUICE_BENCH_TEST", "100,1000") == [100, 1000]
    monkeypatch.setenv("SLUICE_BENCH_TEST", " ")
    assert setting_int("SLUICE_BENCH_TEST", 7) == 7


def test_numbers_are_read_with_underscores_and_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_BENCH_TEST", "10_000")
    assert setting_int("SLUICE_BENCH_TEST", 7) == 10000
    monkeypatch.setenv("SLUICE_BENCH_TEST", " 100, 1_000 ,")
    assert setting_ints("SLUICE_BENCH_TEST", "1") == [100, 1000]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("ten", "'ten': expected a whole number, e.g. SLUICE_BENCH_TEST=7"),
        ("0", "'0': must be at least 1"),
        ("1.5", "expected a whole number"),
    ],
)
def test_a_bad_number_names_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str, message: str) -> None:
    monkeypatch.setenv("SLUICE_BENCH_TEST", raw)
    with pytest.raises(SettingError, match="SLUICE_BENCH_TEST=") as caught:
        setting_int("SLUICE_BENCH_TEST", 7, minimum=1)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("100,1k", "'1k' is not a whole number; expected e.g. SLUICE_BENCH_TEST=100,1000"),
        (",,", "no numbers given"),
        ("100,0", "0 is below 1"),
    ],
)
def test_a_bad_list_names_the_variable_and_the_part(
    monkeypatch: pytest.MonkeyPatch, raw: str, message: str
) -> None:
    monkeypatch.setenv("SLUICE_BENCH_TEST", raw)
    with pytest.raises(SettingError) as caught:
        setting_ints("SLUICE_BENCH_TEST", "100,1000", minimum=1)
    assert message in str(caught.value)


def _benchmarks(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_runner_exits_2_naming_the_setting_before_starting_anything() -> None:
    done = _benchmarks("scale", env={"SLUICE_BENCH_SCALE_N": "100,lots"})
    assert done.returncode == 2, done.stderr
    assert "scale: SLUICE_BENCH_SCALE_N='100,lots': 'lots' is not a whole number" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_setting_read_late_in_the_run_is_refused_at_its_start() -> None:
    """How many to approve is used after N rollouts were opened (half an hour for 10,000)."""
    done = _benchmarks("scale", env={"SLUICE_BENCH_SCALE_COMPLETE": "all"})
    assert done.returncode == 2, done.stderr
    assert "scale: SLUICE_BENCH_SCALE_COMPLETE='all': expected a whole number" in done.stdout
    done = _benchmarks("decision_quality", "--real", "1", env={"SLUICE_BENCH_REAL_SIMULATED": "0"})
    assert done.returncode == 2, done.stderr
    assert "SLUICE_BENCH_REAL_SIMULATED='0': must be at least 1" in done.stdout


def test_real_without_a_count_is_refused() -> None:
    done = _benchmarks("decision_quality", "--real", env={})
    assert done.returncode == 2
    assert "--real takes the number of real rollouts" in done.stdout
