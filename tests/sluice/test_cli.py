"""The sluice CLI as a user runs it: a subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.support.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]


def sluice(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("sluice"), *args], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )


def test_validate_accepts_the_examples() -> None:
    for example in ("examples/reviews-local.yaml", "examples/reviews-local.json"):
        done = sluice("validate", example)
        assert done.returncode == 0, done.stderr
        assert "rollout-default-reviews" in done.stdout


def test_json_example_is_the_yaml_example() -> None:
    assert json.loads((ROOT / "examples/reviews-local.json").read_text()) == yaml.safe_load(
        (ROOT / "examples/reviews-local.yaml").read_text()
    )


def test_invalid_spec_is_one_clear_error_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "service: reviews\nrouter: {kind: dryRun}\nstable: {host: a}\ncanary: {host: b}\n"
        "steps:\n  - setWieght: 10\n  - setWeight: 150\n"
    )
    done = sluice("validate", str(bad))
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert "steps[0].setWieght: unknown step kind" in message
    assert "steps[1].setWeight: must be 0..100, got 150" in message
    assert "Traceback" not in done.stderr


def test_unreachable_temporal_is_a_clear_error() -> None:
    done = sluice("status", "rollout-default-reviews", "--address", "127.0.0.1:9")
    assert done.returncode == 2
    assert "cannot reach Temporal at 127.0.0.1:9" in " ".join(done.stderr.split())
