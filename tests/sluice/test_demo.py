"""``sluice demo`` as a user runs it: the console script in a subprocess, on the demo's fixed
loopback ports, with a real Prometheus (Debian's package), Temporal dev server, Envoy and worker.

The plain demo must succeed with every step's served split shown and the route ending on
reviews-v2 alone; ``--bad-canary`` must be rolled back by the analysis at 10% and exit 0 because
that rollback is what it demonstrates.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.binaries import require_binary

SLUICE = Path(sys.executable).parent / "sluice"


@pytest.fixture
def prometheus_installed() -> None:
    # A failure under CI, a skip with the install hint elsewhere.
    require_binary("prometheus")


def run_demo(state_dir: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}  # no wrapping of long lines
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [str(SLUICE), "demo", "--state-dir", str(state_dir), *args],
        cwd=state_dir.parent,  # outside the checkout: the demo needs nothing from it
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def served_splits(output: str) -> dict[int, tuple[int, int, int]]:
    """``{step: (expected canary %, stable served, canary served)}`` from the split lines."""
    return {
        int(step): (int(weight), int(stable), int(canary))
        for step, weight, stable, canary in re.findall(
            r"step (\d+)\s+\[[█░]+\]\s+(\d+)% canary\s+served (\d+) reviews-v1 / (\d+) reviews-v2",
            output,
        )
    }


def test_demo_rolls_reviews_v2_out_with_analysis(tmp_path: Path, prometheus_installed: None) -> None:
    done = run_demo(tmp_path / "demo", "--bake", "5s")
    output = done.stdout
    assert done.returncode == 0, output + done.stderr

    splits = served_splits(output)
    assert sorted(splits) == [0, 1, 3, 5, 7], output
    assert splits[0] == (0, 200, 0)
    weight, stable, canary = splits[1]
    assert weight == 10 and stable + canary == 200 and 5 <= canary <= 40, splits[1]
    weight, stable, canary = splits[3]
    assert weight == 50 and stable + canary == 200 and 60 <= canary <= 140, splits[3]
    assert splits[5] == (100, 0, 200) and splits[7] == (100, 0, 200)

    # Every measurement is shown; a healthy canary reads 0 and nothing fails.
    measurements = re.findall(r"analysis at (\d+)% canary: error-rate = (\S+(?: data)?)\s+(\w+)", output)
    assert len(measurements) >= 6, output  # 5 s bakes at three weights (and the steps), every 2 s
    assert {verdict for _, _, verdict in measurements} <= {"Successful", "Inconclusive"}
    assert {value for _, value, verdict in measurements if verdict == "Successful"} == {"0"}
    assert {"10", "50", "100"} <= {weight for weight, _, _ in measurements}

    # The four-eyes gate: one person twice is refused, a second person passes it.
    assert "alice: step 6: approval 1 of 2 by alice; 1 more distinct approver needed" in output
    assert "alice again: refused: alice already approved step 6; 1 more distinct approver needed" in output
    assert "bob: step 6 approved by alice, bob (2 of 2)" in output
    # Notifications, as the local receiver got them from the worker (Slack format).
    notified = re.findall(r"notification to demo-chat: (.*)", output)
    assert "reviews: rollout started" in notified[0], notified
    gates = [line for line in notified if "waiting for approval at step" in line]
    assert [re.search(r"step (\d+)", line).group(1) for line in gates] == ["2", "4", "6"], notified  # type: ignore[union-attr]
    assert "reviews: rollout succeeded" in notified[-1], notified

    assert (
        "Analysis: reviews-v2 error rate from Prometheus every 2s, max 0.05, 5s bake at each weight"
        in " ".join(output.split())
    )
    assert "Rollout succeeded" in output
    assert "step 6 by alice, step 6 by bob" in output
    assert "Final measured split: 0 reviews-v1 / 100 reviews-v2 of 100 requests" in output
    assert re.search(r"route:\s+cluster: reviews-v2\s", output), output
    assert "weighted_clusters" not in output.split("Final route", 1)[1]
    assert re.search(r"Background load: \d+ requests sent, 0 failed", output), output
    assert output.rstrip().endswith("Stack stopped.")


def test_bad_canary_is_rolled_back_by_itself_at_ten_percent(
    tmp_path: Path, prometheus_installed: None
) -> None:
    done = run_demo(tmp_path / "demo", "--bad-canary")
    output = done.stdout
    assert done.returncode == 0, output + done.stderr  # the expected rollback is the demo's success

    splits = served_splits(output)
    assert max(weight for weight, _, _ in splits.values()) == 10, output  # never reached 50%
    assert "waiting for approval" not in output  # rolled back during the 10% bake, before the gate
    failed = re.findall(r"error-rate = ([0-9.e-]+)\s+Failed \(\S+ > max 0\.05\)", output)
    assert failed and float(failed[-1]) > 0.05, output

    flat = " ".join(output.split())  # rich wraps long lines
    assert "Rolled back by the analysis (AnalysisFailed, phase RolledBack, highest canary weight 10%)" in flat
    assert re.search(
        r"metric error-rate failed: 1 failed measurement\(s\) > failureLimit 0 \(max 0\.05\)", flat
    )
    assert "Final measured split: 100 reviews-v1 / 0 reviews-v2 of 100 requests" in flat
    assert "As expected" in flat and "Rollout succeeded" not in flat
    notified = re.findall(r"notification to demo-chat: (.*)", output)
    assert "reviews: rollout started" in notified[0], notified
    assert "reviews: rolled back" in notified[-1], notified
    assert output.rstrip().endswith("Stack stopped.")


def test_demo_without_prometheus_says_how_to_install_it(tmp_path: Path) -> None:
    done = run_demo(tmp_path / "demo", path=str(SLUICE.parent))  # only the venv: no prometheus
    assert done.returncode == 2, done.stdout + done.stderr
    assert "prometheus is not installed" in done.stderr
    assert "apt-get install prometheus" in " ".join(done.stderr.split())
    assert not (tmp_path / "demo" / "logs").exists()  # nothing was started


def test_a_bad_bake_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = run_demo(tmp_path / "demo", "--bake", "soon")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--bake: must be a duration like 30s, 10m, 2h, 1d, got 'soon'" in " ".join(done.stderr.split())
    assert not (tmp_path / "demo" / "logs").exists()  # nothing was started


def test_interactive_demo_goes_on_with_the_commands_it_prints(
    tmp_path: Path, prometheus_installed: None
) -> None:
    """``--interactive`` as a person uses it: paste each approve command the demo prints (the
    four-eyes gate prints one per approver) into a shell and watch it move on."""
    env = {**os.environ, "COLUMNS": "250", "USER": "dana", "PYTHONUNBUFFERED": "1"}
    shell_env = {**env, "PATH": f"{SLUICE.parent}{os.pathsep}{env.get('PATH', '')}"}
    state_dir = tmp_path / "demo"
    demo = subprocess.Popen(
        # a 1 s bake at each weight: this test is about the printed commands, not the analysis
        [str(SLUICE), "demo", "--interactive", "--bake", "1s", "--state-dir", str(state_dir)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    answers: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            command = line.strip()
            if (
                command.startswith("temporal ")
                and "update execute" in command
                and "--name approve" in command
            ):
                pasted = subprocess.run(
                    ["bash", "-c", command], env=shell_env, capture_output=True, text=True, timeout=60
                )
                assert pasted.returncode == 0, pasted.stdout + pasted.stderr
                answers.append(pasted.stdout)
        assert demo.wait(timeout=60) == 0, "".join(lines)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    output = "".join(lines)
    assert "two distinct approvers of alice, bob, sre-* must pass this gate" in output
    assert len(answers) == 4, output  # dana at steps 2 and 4, alice and bob at step 6
    assert "step 6: approval 1 of 2 by alice" in answers[2] and "step 6 approved by alice, bob" in answers[3]
    assert "Approvals: step 2 by dana, step 4 by dana, step 6 by alice, step 6 by bob" in output
    assert "'$USER'" not in output and '"by": "dana"' in output  # commands that work as pasted
    # What people did from the other terminal is echoed.
    assert "from outside: approved by dana at step 2 (update)" in output
    assert "from outside: approved by bob at step 6 (update)" in output
    notified = re.findall(r"notification to demo-chat: (.*)", output)
    assert sum("waiting for approval at step" in line for line in notified) == 3, notified
    assert "reviews: rollout succeeded" in notified[-1], notified
