"""The sluice CLI as a user runs it: a subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from importlib.metadata import version
from pathlib import Path

import yaml
from typer.testing import CliRunner

from sluice.cli import app
from sluice.stack import free_port
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
    assert done.stderr.startswith("error: cannot reach Temporal at 127.0.0.1:9")
    assert done.stderr.count("\n") == 1  # one line, even through a pipe


def test_version() -> None:
    done = sluice("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"sluice {version('sluicegate')}"


def test_each_command_lists_only_its_own_options_and_flags_take_no_placeholder() -> None:
    commands = (
        "validate",
        "start",
        "status",
        "approve",
        "abort",
        "pause",
        "resume",
        "promote",
        "audit",
        "dev",
        "demo",
    )
    runner = CliRunner()  # in-process: a subprocess per help text takes seconds
    helps = {
        name: runner.invoke(app, [name, "--help"] if name else ["--help"]).output for name in ("", *commands)
    }
    for name, text in helps.items():
        assert "<bool>" not in text and "--no-" not in text, (name, text)
    assert "--full" not in helps["approve"] and "--ignore-window" not in helps["approve"]
    assert "--full" in helps["promote"] and "--ignore-window" in helps["promote"]
    assert "--step" in helps["approve"] and "--step" not in helps["promote"]
    assert all(
        "--output" in helps[name] for name in ("validate", "start", "status", "approve", "promote", "audit")
    )
    assert "--install-completion" in helps[""] and "--version" in helps[""]


def test_dev_with_a_port_in_use_is_one_line_naming_it(tmp_path: Path) -> None:
    """``sluice dev`` on ports this test chose, one of them held by the test: nothing starts."""
    for held_piece in ("stable_backend", "temporal_ui", "envoy"):
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            held.listen()
            ports = {piece: free_port() for piece in PIECES}
            ports[held_piece] = held.getsockname()[1]
            done = sluice_dev_on(ports, tmp_path / held_piece)
        assert done.returncode == 2, (held_piece, done.stdout, done.stderr)
        in_use = f"port 127.0.0.1:{ports[held_piece]} is already in use"
        assert done.stderr == f"error: {in_use} (another `sluice dev` or `sluice demo`?)\n"


PIECES = ("temporal", "temporal_ui", "envoy", "envoy_admin", "stable_backend", "canary_backend")


def sluice_dev_on(ports: dict[str, int], state_dir: Path) -> subprocess.CompletedProcess[str]:
    """``sluice dev`` through its real entry point, with the stack's fixed ports replaced."""
    program = (
        "import sys, sluice.cli as cli\n"
        "from sluice.stack import StackPorts\n"
        f"cli.StackPorts = lambda: StackPorts(**{ports!r})\n"
        f"sys.argv = ['sluice', 'dev', '--state-dir', {str(state_dir)!r}]\n"
        "cli.main()\n"
    )
    python = str(Path(require_binary("sluice")).parent / "python")
    return subprocess.run(
        [python, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )


def test_shell_completion_offers_commands_and_each_commands_own_options() -> None:
    def complete(words: str) -> list[str]:
        env = {**os.environ, "_SLUICE_COMPLETE": "complete_bash", "COMP_WORDS": words}
        env["COMP_CWORD"] = str(len(words.split()) - 1)
        done = subprocess.run(
            [require_binary("sluice")], capture_output=True, text=True, timeout=60, env=env, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("sluice st") == ["start", "status"]
    assert complete("sluice promote x --i") == ["--ignore-window"]
    assert complete("sluice approve x --f") == []
