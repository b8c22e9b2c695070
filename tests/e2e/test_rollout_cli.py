"""End to end through the plain ``temporal`` CLI: a real Envoy, the demo backends, the worker.

Every check of what is served samples real requests through Envoy; every check of the route
reads the RDS file Envoy watches. One stack serves the whole module; each test resets the route
and uses its own workflow id.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sluice.stack import Fault, LocalStack, sample_versions, wait_applied
from tests.support.e2e import (
    TemporalCli,
    assert_split,
    completed_result,
    failure_of,
    measure_approve_to_served,
    rds_route_action,
    rds_weights,
    wait_until,
    write_rds_weights,
    write_spec,
)
from worker.client import connect
from worker.settings import Settings

pytestmark = pytest.mark.e2e

V1, V2 = "reviews-v1", "reviews-v2"
SAMPLES = 400


def waiting_at(step: int) -> Any:
    return lambda s: s["phase"] == "WaitingForApproval" and (s.get("waitingFor") or {}).get("step") == step


def weights_set(status: dict[str, Any]) -> list[tuple[int, int]]:
    """``(plan step, canary weight)`` of every traffic change the rollout recorded, in order."""
    return [(e["step"], e["detail"]["canary"]) for e in status["events"] if e["event"] == "weightsSet"]


def served(stack: LocalStack, canary_weight: int) -> None:
    """Envoy, sampled independently of the workflow, serves ``canary_weight``% canary."""
    assert_split(sample_versions(stack.envoy.url, SAMPLES), V1, V2, canary_weight)


def unique_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_happy_path_signal_and_update_approvals(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path
) -> None:
    stack = clean_stack
    steps: list[dict[str, Any]] = [
        {"setWeight": 10},
        {"approval": {}},
        {"setWeight": 50},
        {"approval": {}},
        {"setWeight": 100},
        {"removeOld": {}},
    ]
    spec_file = write_spec(tmp_path, stack.spec_for(steps))
    workflow_id = "rollout-default-reviews"
    served(stack, 0)

    started = cli.start(workflow_id, spec_file)
    assert started["type"] == "Rollout" and started["taskQueue"] == "rollouts"

    status = cli.wait_status(workflow_id, waiting_at(2))
    assert status["currentStep"] == 2 and status["weights"] == {"stable": 90, "canary": 10}
    assert rds_weights(stack.envoy.routes_file) == {V1: 90, V2: 10}
    served(stack, 10)

    cli.signal(workflow_id, "approve", {"by": "alice"})
    status = cli.wait_status(workflow_id, waiting_at(4))
    assert status["weights"] == {"stable": 50, "canary": 50}
    assert rds_weights(stack.envoy.routes_file) == {V1: 50, V2: 50}
    served(stack, 50)

    answer = cli.update_result(workflow_id, "approve", {"by": "bob", "step": 4})
    assert answer["accepted"] is True and answer["message"] == "step 4 approved by bob"

    summary = completed_result(cli.result(workflow_id))
    assert summary["phase"] == "Succeeded"
    assert summary["weights"] == {"stable": 0, "canary": 100}
    assert [(a["by"], a["step"], a["via"]) for a in summary["approvals"]] == [
        ("alice", 2, "signal"),
        ("bob", 4, "update"),
    ]
    assert weights_set(summary) == [(0, 0), (1, 10), (3, 50), (5, 100)]
    assert [e["step"] for e in summary["events"] if e["event"] == "oldRemovedFromRoute"] == [6]
    assert all(v["result"]["passed"] for v in summary["verifications"])
    assert [v["step"] for v in summary["verifications"]] == [0, 1, 3, 5, 6]
    # removeOld: the route sends to the canary alone, not a 0/100 weighted split.
    assert rds_route_action(stack.envoy.routes_file) == {"cluster": V2}
    served(stack, 100)


def start_at_gate(stack: LocalStack, cli: TemporalCli, tmp_path: Path, prefix: str) -> str:
    """A rollout at 50/50 waiting for approval at step 2 (served split checked)."""
    workflow_id = unique_id(prefix)
    spec_file = write_spec(
        tmp_path, stack.spec_for([{"setWeight": 50}, {"approval": {}}, {"setWeight": 100}])
    )
    cli.start(workflow_id, spec_file)
    cli.wait_status(workflow_id, waiting_at(2))
    assert rds_weights(stack.envoy.routes_file) == {V1: 50, V2: 50}
    served(stack, 50)
    return workflow_id


def test_cancel_rolls_back_to_stable(clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path) -> None:
    workflow_id = start_at_gate(clean_stack, cli, tmp_path, "cancel")

    cli.cancel(workflow_id)

    failure = failure_of(cli.result(workflow_id))
    assert failure["applicationFailureInfo"]["type"] == "RolloutCancelled"
    assert rds_weights(clean_stack.envoy.routes_file) == {V1: 100, V2: 0}
    served(clean_stack, 0)
    assert cli.status(workflow_id)["phase"] == "RolledBack"


def test_abort_update_rolls_back_to_stable(clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path) -> None:
    workflow_id = start_at_gate(clean_stack, cli, tmp_path, "abort")

    answer = cli.update_result(workflow_id, "abort", {"by": "carol", "reason": "5xx up"})
    assert answer["accepted"] is True

    failure = failure_of(cli.result(workflow_id))
    assert failure["applicationFailureInfo"]["type"] == "RolloutAborted"
    assert "aborted by carol: 5xx up" in failure["message"]
    assert rds_weights(clean_stack.envoy.routes_file) == {V1: 100, V2: 0}
    served(clean_stack, 0)


def test_route_edited_by_hand_during_verification_fails_and_rolls_back(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path
) -> None:
    """The workflow sets 90/10; while its sampler checks that, an operator rewrites the RDS file
    to 50/50 (atomic rename). The sampler sees what Envoy really serves, the check fails, and the
    rollback rewrites the file to 100/0.

    A hand edit while the rollout *waits* is a different story: the next change finds the route
    not where the rollout left it and holds for a person (drift, tested below), so verification
    is where a behind-the-back edit turns into ``VerificationFailed``.
    """
    stack = clean_stack
    # 100 ms per answer, 10 at a time: each 200-sample verification takes about 2 s.
    for backend in (stack.stable, stack.canary):
        backend.set_fault(Fault(latency_ms=100))
    workflow_id = unique_id("verify")
    cli.start(workflow_id, write_spec(tmp_path, stack.spec_for([{"setWeight": 10}, {"setWeight": 20}])))

    status = cli.wait_status(
        workflow_id, lambda s: s["phase"] == "Verifying" and s["currentStep"] == 1, timeout=20
    )
    assert status["weights"] == {"stable": 90, "canary": 10}
    try:
        write_rds_weights(stack.envoy.routes_file, {V1: 50, V2: 50}, version="edited-by-hand")
    finally:
        for backend in (stack.stable, stack.canary):  # the rest of the sampling runs fast
            backend.set_fault(Fault())

    failure = failure_of(cli.result(workflow_id))
    assert failure["applicationFailureInfo"]["type"] == "VerificationFailed", failure["message"]
    assert failure["message"].startswith("VerificationFailed: step 1: expected 90/10 but sampled")
    status = cli.status(workflow_id)
    assert status["phase"] == "RolledBack"
    assert weights_set(status) == [(0, 0), (1, 10)]  # never reached 20
    assert rds_weights(stack.envoy.routes_file) == {V1: 100, V2: 0}
    served(stack, 0)


def test_route_edited_by_hand_at_a_gate_is_held_as_drift(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path
) -> None:
    """An edit while the rollout waits is not overwritten: the approved step holds for a person;
    abort then restores 100% stable."""
    stack = clean_stack
    workflow_id = start_at_gate(stack, cli, tmp_path, "drift")
    write_rds_weights(stack.envoy.routes_file, {V1: 80, V2: 20}, version="edited-by-hand")
    wait_applied(stack.envoy.admin_url, "edited-by-hand")
    served(stack, 20)

    cli.update_result(workflow_id, "approve", {"by": "dave", "step": 2})
    status = cli.wait_status(workflow_id, lambda s: s["phase"] == "Paused")
    assert [e["step"] for e in status["events"] if e["event"] == "driftDetected"] == [3]
    assert rds_weights(stack.envoy.routes_file) == {V1: 80, V2: 20}  # not overwritten
    served(stack, 20)

    cli.update_result(workflow_id, "abort", {"by": "dave", "reason": "someone edited the route"})
    failure = failure_of(cli.result(workflow_id))
    assert failure["applicationFailureInfo"]["type"] == "RolloutAborted"
    assert rds_weights(stack.envoy.routes_file) == {V1: 100, V2: 0}
    served(stack, 0)


def create_schedule(cli: TemporalCli, schedule_id: str, spec_file: Path) -> None:
    """A schedule that starts a rollout once a year (the tests trigger it by hand)."""
    cli.run(
        "schedule", "create", "--schedule-id", schedule_id, "--type", "Rollout",
        "--task-queue", "rollouts", "--workflow-id", f"{schedule_id}-rollout",
        "--input-file", str(spec_file), "--cron", "0 0 1 1 *",
    )  # fmt: skip


def trigger(cli: TemporalCli, schedule_id: str) -> str:
    """Trigger the schedule; the workflow id of the run it started (Temporal timestamps it)."""
    cli.run("schedule", "trigger", "--schedule-id", schedule_id)

    def started_run() -> str | None:
        info = cli.json("schedule", "describe", "--schedule-id", schedule_id)["info"]
        actions = info.get("recentActions") or []
        return actions[0]["startWorkflowResult"]["workflowId"] if actions else None

    workflow_id = wait_until(started_run, 15, "the triggered schedule started nothing")
    assert workflow_id is not None
    return workflow_id


def test_schedule_created_with_the_cli_starts_a_rollout(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path
) -> None:
    stack = clean_stack
    schedule_id = unique_id("sched")
    spec_file = write_spec(tmp_path, stack.spec_for([{"setWeight": 50}, {"setWeight": 100}]))
    create_schedule(cli, schedule_id, spec_file)
    try:
        workflow_id = trigger(cli, schedule_id)
        assert workflow_id.startswith(f"{schedule_id}-rollout")
        summary = completed_result(cli.result(workflow_id))
        assert summary["phase"] == "Succeeded"
        assert weights_set(summary) == [(0, 0), (1, 50), (2, 100)]
        listed = wait_until(
            lambda: cli.list_workflows(f"WorkflowType='Rollout' AND TemporalScheduledById='{schedule_id}'"),
            15,
            "the scheduled rollout is not listed",
        )
        assert [w["execution"]["workflowId"] for w in listed] == [workflow_id]
        assert rds_weights(stack.envoy.routes_file) == {V1: 0, V2: 100}
        served(stack, 100)
    finally:
        cli.run("schedule", "delete", "--schedule-id", schedule_id)


def test_a_scheduled_run_and_a_manual_start_of_one_route_do_not_both_drive_it(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path
) -> None:
    """A schedule's run gets a timestamped workflow id, so the per-service id guard cannot stop a
    manual start beside it: the route claim does. The manual start fails RouteBusy untouched."""
    stack = clean_stack
    schedule_id = unique_id("sched-busy")
    spec_file = write_spec(
        tmp_path, stack.spec_for([{"setWeight": 50}, {"approval": {}}, {"setWeight": 100}])
    )
    create_schedule(cli, schedule_id, spec_file)
    try:
        scheduled = trigger(cli, schedule_id)
        cli.wait_status(scheduled, waiting_at(2))
        manual = unique_id("manual")
        cli.start(manual, spec_file)
        failure = failure_of(cli.result(manual))
        assert failure["applicationFailureInfo"]["type"] == "RouteBusy"
        assert scheduled in failure["message"]
        assert cli.status(manual)["events"][-1]["detail"] == {"phase": "Failed"}
        assert rds_weights(stack.envoy.routes_file) == {V1: 50, V2: 50}  # still the scheduled run's
        served(stack, 50)
        cli.update_result(scheduled, "approve", {"by": "alice"})
        assert completed_result(cli.result(scheduled))["phase"] == "Succeeded"
        served(stack, 100)
    finally:
        cli.run("schedule", "delete", "--schedule-id", schedule_id)


def test_a_schedule_starts_rollouts_and_the_windows_hold_them(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path
) -> None:
    """The schedule decides when a rollout starts, the spec's windows when its traffic moves: a
    run started outside them holds at 100% stable, showing until when, until ``ignoreWindow``."""
    stack = clean_stack
    closed_day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[(datetime.now(UTC).weekday() + 3) % 7]
    spec = stack.spec_for([{"setWeight": 50}, {"setWeight": 100}])
    spec["windows"] = [{"days": [closed_day], "start": "09:00", "end": "10:00", "timezone": "Europe/Berlin"}]
    schedule_id = unique_id("sched-window")
    create_schedule(cli, schedule_id, write_spec(tmp_path, spec))
    try:
        workflow_id = trigger(cli, schedule_id)
        status = cli.wait_status(workflow_id, lambda s: s["phase"] == "WaitingForWindow")
        waiting = status["waitingFor"]
        assert (waiting["kind"], waiting["step"]) == ("window", 1)
        assert waiting["reason"].startswith(
            f"outside deployment windows ({closed_day} 09:00-10:00 Europe/Berlin)"
        )
        assert datetime.fromisoformat(waiting["until"]) > datetime.now(UTC) + timedelta(days=1)
        assert rds_weights(stack.envoy.routes_file) == {V1: 100, V2: 0}
        served(stack, 0)

        cli.update_result(workflow_id, "promote", {"by": "alice", "ignoreWindow": True})
        cli.wait_status(workflow_id, lambda s: (s.get("waitingFor") or {}).get("step") == 2)
        assert rds_weights(stack.envoy.routes_file) == {V1: 50, V2: 50}  # overridden once
        cli.update_result(workflow_id, "promote", {"by": "alice", "ignoreWindow": True})
        summary = completed_result(cli.result(workflow_id))
        assert weights_set(summary) == [(0, 0), (1, 50), (2, 100)]
        assert [e["by"] for e in summary["events"] if e["event"] == "windowOverridden"] == ["alice", "alice"]
        served(stack, 100)
    finally:
        cli.run("schedule", "delete", "--schedule-id", schedule_id)


_WINDOW = {"days": ["Mon"], "start": "09:00", "end": "16:00", "timezone": "Europe/Berlin"}
INVALID_SPECS: list[tuple[str, Any, str]] = [
    ("service-wrong-type", lambda s: s.update(service=123), "service: Input should be a valid string"),
    (
        "weight-wrong-type",
        lambda s: s.update(steps=[{"setWeight": "ten"}]),
        "steps[0].setWeight: Input should be a valid integer",
    ),
    ("steps-not-a-list", lambda s: s.update(steps={"setWeight": 10}), "steps: Input should be a valid list"),
    (
        "weight-150",
        lambda s: s.update(steps=[{"setWeight": 150}]),
        "steps[0].setWeight: must be 0..100, got 150",
    ),
    ("router-kind", lambda s: s["router"].update(kind="nginx"), "router.kind: unknown router kind 'nginx'"),
    ("unknown-key", lambda s: s.update(verfy={}), "verfy: unknown key"),
    ("misspelt-step", lambda s: s.update(steps=[{"setWieght": 10}]), "steps[0].setWieght: unknown step kind"),
    ("stable-equals-canary", lambda s: s.update(canary={"host": V1}), "canary: must differ from stable"),
    ("missing-routes-file", lambda s: s["router"].pop("routesFile"), "router.routesFile: required"),
    (
        "unknown-step",
        lambda s: s.update(steps=[{"setWeight": 10}, {"rollback": {}}]),
        "steps[1].rollback: unknown step kind",
    ),
    (
        "window-day",
        lambda s: s.update(windows=[{**_WINDOW, "days": ["Mon", "Fry"]}]),
        "windows[0].days[1]: unknown day 'Fry' (Mon..Sun)",
    ),
    (
        "window-end-before-start",
        lambda s: s.update(windows=[{**_WINDOW, "start": "16:00", "end": "09:00"}]),
        "windows[0].end: must be after start 16:00",
    ),
    (
        "window-timezone",
        lambda s: s.update(windows=[{**_WINDOW, "timezone": "Europe/Berln"}]),
        "windows[0].timezone: unknown IANA time zone 'Europe/Berln'",
    ),
    (
        "blackout-without-offset",
        lambda s: s.update(blackouts=[{"start": "2026-12-20T00:00:00", "end": "2027-01-04T00:00:00+01:00"}]),
        "blackouts[0].start: needs a UTC offset",
    ),
]


def test_invalid_specs_fail_fast_naming_the_field(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path
) -> None:
    stack = clean_stack
    before = stack.envoy.routes_file.read_bytes()
    started: dict[str, str] = {}
    for name, mutate, _ in INVALID_SPECS:
        spec = stack.spec_for([{"setWeight": 10}, {"approval": {}}])
        mutate(spec)
        workflow_id = unique_id(f"bad-{name}")
        cli.start(workflow_id, write_spec(tmp_path, spec, f"{name}.json"))
        started[name] = workflow_id

    for name, _, expected in INVALID_SPECS:
        workflow_id = started[name]
        outcome = cli.result(workflow_id, timeout=15)
        failure = failure_of(outcome)
        assert failure["applicationFailureInfo"]["type"] == "InvalidSpec", name
        assert expected in failure["message"], (name, failure["message"])
        described = cli.describe(workflow_id)["workflowExecutionInfo"]
        assert described["status"] == "WORKFLOW_EXECUTION_STATUS_FAILED", name
        seconds = float(described["executionDuration"].rstrip("s"))
        assert seconds < 5, f"{name} took {seconds}s to fail"
    assert stack.envoy.routes_file.read_bytes() == before
    served(stack, 0)


def test_bad_update_payloads_are_refused_with_a_reason(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path
) -> None:
    stack = clean_stack
    workflow_id = unique_id("bad-updates")
    cli.start(
        workflow_id,
        write_spec(tmp_path, stack.spec_for([{"setWeight": 10}, {"approval": {}}, {"setWeight": 20}])),
    )
    cli.wait_status(workflow_id, waiting_at(2))

    refusals = [
        ({"by": ""}, "approve: by: must name who acts"),
        ({"by": "x", "step": 99}, "waits for approval at step 2, not step 99"),
        ({"who": "x"}, "who: unknown key"),
        ('"yes"', "payload must be a JSON object"),
    ]
    for payload, reason in refusals:
        done = cli.update(workflow_id, "approve", payload, check=False)
        assert done.returncode != 0, (payload, done.stdout)
        assert reason in done.stderr + done.stdout, (payload, done.stderr)
    resume = cli.update(workflow_id, "resume", {"by": "x"}, check=False)
    assert resume.returncode != 0 and "not paused" in resume.stderr

    status = cli.status(workflow_id)
    assert waiting_at(2)(status) and not status["approvals"]
    assert rds_weights(stack.envoy.routes_file) == {V1: 90, V2: 10}

    cli.update_result(workflow_id, "approve", {"by": "erin", "step": 2})
    summary = completed_result(cli.result(workflow_id))
    assert [(a["by"], a["step"]) for a in summary["approvals"]] == [("erin", 2)]
    assert weights_set(summary) == [(0, 0), (1, 10), (3, 20)]


async def test_approve_to_served_latency(clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path) -> None:
    """Measured, not asserted: from an ``approve`` update returning to Envoy serving the change."""
    stack = clean_stack
    gates = [2, 4, 6, 8]
    steps: list[dict[str, Any]] = []
    for weight in (10, 20, 40, 60, 100):
        steps += [{"setWeight": weight}, {"approval": {}}]
    spec = stack.spec_for(steps[:-1], samples=140)  # the fewest that can check 10% at alpha 1e-6
    workflow_id = unique_id("latency")
    cli.start(workflow_id, write_spec(tmp_path, spec))
    client = await connect(Settings(address=stack.temporal.address))
    handle = client.get_workflow_handle(workflow_id)
    latencies: list[float] = []
    for step in gates:
        deadline = time.monotonic() + 20
        while not waiting_at(step)(await handle.query("status")):
            assert time.monotonic() < deadline, f"never waited at step {step}"
            await asyncio.sleep(0.02)
        latencies.append(await measure_approve_to_served(client, workflow_id, step, stack.envoy.admin_url))
    summary = completed_result(cli.result(workflow_id))
    assert weights_set(summary)[-1] == (9, 100)
    print(
        f"\napprove -> served: median {statistics.median(latencies) * 1000:.1f} ms "
        f"over {len(latencies)} gates ({', '.join(f'{x * 1000:.1f}' for x in latencies)} ms)"
    )
