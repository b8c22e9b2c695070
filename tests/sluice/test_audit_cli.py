"""``sluice audit`` as a user runs it, on a rollout people acted on through the plain ``temporal`` CLI.

A real dev server and the real worker (dryRun router). Each person uses ``temporal --identity``,
as a team whose clients set their identity would; one of them claims to be someone else. The
dev server suggests continue-as-new after 40 events, so the rollout spans several runs and the
audit has to follow the chain.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from tests.support.binaries import require_binary
from tests.support.rollouts import dry_run_spec, wait_for_status
from worker.main import build_worker

ROOT = Path(__file__).resolve().parents[2]


async def run(*command: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """A subprocess in a thread: the worker shares this event loop and must go on polling.
    ``columns``: the terminal width rich lays the table out for."""
    return await asyncio.to_thread(
        subprocess.run, list(command), capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
        env={**os.environ, "COLUMNS": str(columns)},
    )  # fmt: skip


async def temporal(address: str, *args: str, identity: str | None = None) -> str:
    who = ["--identity", identity] if identity else []
    done = await run(require_binary("temporal"), *args, *who, "--address", address)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def sluice_audit(address: str, rollout: str, output: str, *extra: str) -> str:
    done = await run(
        require_binary("sluice"), "audit", rollout, "--output", output, "--address", address, *extra,
        columns=250,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_audit_shows_who_sent_each_action_and_flags_a_false_claim(
    small_history_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = small_history_env.client
    address = client.service_client.config.target_host
    queue = f"test-{uuid.uuid4()}"
    rollout = f"rollout-audit-{uuid.uuid4().hex[:8]}"
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(
        json.dumps(
            dry_run_spec(
                [{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}, {"approval": {}}, {"setWeight": 100}]
            )
        )
    )
    async with build_worker(client, queue):
        await temporal(
            address, "workflow", "start", "--type", "Rollout", "--task-queue", queue,
            "--workflow-id", rollout, "--input-file", str(spec_file), identity="carol@ci",
        )  # fmt: skip
        handle = client.get_workflow_handle(rollout)
        await wait_for_status(handle, lambda s: (s["waitingFor"] or {}).get("step") == 2)
        # mallory, with the CLI's default identity, approves a step nobody waits at: refused
        signal = ("workflow", "signal", "--workflow-id", rollout, "--name", "approve")
        await temporal(address, *signal, "--input", '{"by": "mallory", "step": 9}')
        await temporal(address, *signal, "--input", '{"by": "alice"}', identity="alice@laptop")
        await wait_for_status(handle, lambda s: (s["waitingFor"] or {}).get("step") == 4)

        # While it runs, the steps of signals come from the running run's status query.
        running = json.loads(await sluice_audit(address, rollout, "json"))
        alice = next(r for r in running["rows"] if r["by"] == "alice")
        assert (alice["step"], alice["outcome"], alice["mismatch"]) == (2, "applied", False)

        # bob's client claims carol approved
        await temporal(
            address, "workflow", "update", "execute", "--workflow-id", rollout, "--name", "approve",
            "--input", '{"by": "carol", "comment": "lgtm"}', identity="bob@desk",
        )  # fmt: skip
        summary = await handle.result()
    assert summary["phase"] == "Succeeded"

    audit = json.loads(await sluice_audit(address, rollout, "json"))
    rows: list[dict[str, Any]] = audit["rows"]
    assert audit["rolloutId"] == rollout
    assert len(audit["runs"]) == summary["runs"] >= 2  # the chain of continue-as-new runs, oldest first
    assert {r["runId"] for r in rows} <= set(audit["runs"])

    humans = [(r["action"], r["via"], r["by"], r["identity"], r["step"], r["outcome"], r["mismatch"])
              for r in rows if r["via"] in ("start", "signal", "update")]  # fmt: skip
    cli_default = humans[1][3]  # the CLI's own identity, temporal-cli:<local user>@<host>: not mallory
    assert cli_default.startswith("temporal-cli:")
    assert humans == [
        ("start", "start", "", "carol@ci", None, "started", False),
        ("approve", "signal", "mallory", cli_default, 2, "refused", True),
        ("approve", "signal", "alice", "alice@laptop", 2, "applied", False),
        ("approve", "update", "carol", "bob@desk", 4, "accepted", True),
    ]
    assert [r["identityUser"] for r in rows if r["via"] in ("signal", "update")][1:] == ["alice", "bob"]
    refused = next(r for r in rows if r["by"] == "mallory")
    assert "waits for approval at step 2, not step 9" in refused["detail"]

    traffic = [(r["step"], r["weights"], r["outcome"]) for r in rows if r["action"] == "set_weights"]
    assert traffic == [
        (0, {"stable": 100, "canary": 0}, "done"),
        (1, {"stable": 90, "canary": 10}, "done"),
        (3, {"stable": 50, "canary": 50}, "done"),
        (5, {"stable": 0, "canary": 100}, "done"),
    ]
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)

    table = list(csv.DictReader(io.StringIO(await sluice_audit(address, rollout, "csv"))))
    assert [(r["by"], r["identity"], r["mismatch"]) for r in table if r["action"] == "approve"][1:] == [
        ("alice", "alice@laptop", "false"),
        ("carol", "bob@desk", "true"),
    ]
    assert [(r["step"], r["stable"], r["canary"]) for r in table if r["action"] == "set_weights"] == [
        ("0", "100", "0"),
        ("1", "90", "10"),
        ("3", "50", "50"),
        ("5", "0", "100"),
    ]

    # Any run of the rollout names the whole chain.
    from_first_run = json.loads(await sluice_audit(address, rollout, "json", "--run-id", audit["runs"][0]))
    assert from_first_run == audit

    people = await sluice_audit(address, rollout, "table")
    assert "bob@desk" in people and "alice@laptop" in people and "MISMATCH" in people


async def test_audit_of_an_unknown_rollout_is_one_error_and_exit_2(
    small_history_env: WorkflowEnvironment,
) -> None:
    address = small_history_env.client.service_client.config.target_host
    done = await run(require_binary("sluice"), "audit", "rollout-nobody-started", "--address", address)
    assert done.returncode == 2
    assert " ".join(done.stderr.split()) == "error: no rollout 'rollout-nobody-started' in namespace default"
    assert done.stdout == ""


async def test_audit_of_a_rollout_no_worker_answers_for_says_so_and_lists_what_history_has(
    small_history_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Started on a task queue nobody polls: running, its status query unanswered."""
    address = small_history_env.client.service_client.config.target_host
    rollout = f"rollout-unattended-{uuid.uuid4().hex[:8]}"
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(dry_run_spec()))
    await temporal(
        address, "workflow", "start", "--type", "Rollout", "--task-queue", f"nobody-{uuid.uuid4()}",
        "--workflow-id", rollout, "--input-file", str(spec_file), identity="carol@ci",
    )  # fmt: skip
    signal = ("workflow", "signal", "--workflow-id", rollout, "--name", "approve")
    await temporal(address, *signal, "--input", '{"by": "alice"}', identity="alice@laptop")
    done = await run(require_binary("sluice"), "audit", rollout, "-o", "json", "--address", address)
    assert done.returncode == 0, done.stderr
    assert "status query did not answer" in " ".join(done.stderr.split())
    rows = json.loads(done.stdout)["rows"]
    assert [(r["action"], r["identity"], r["step"], r["outcome"], r["mismatch"]) for r in rows] == [
        ("start", "carol@ci", None, "started", False),
        ("approve", "alice@laptop", None, "delivered", False),
    ]
    await temporal(address, "workflow", "terminate", "--workflow-id", rollout, "--reason", "test over")
