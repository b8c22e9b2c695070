"""Durability end to end: SIGKILL the worker (at a gate, inside an activity) and the dev server.

These tests kill parts of the stack, so they get their own stack (module-scoped here), never the
one the CLI tests share. A killed worker is replaced by a fresh ``python -m worker``; a killed
dev server is restarted on the same port with the same database file. The fixture stops every
process, the replacements included.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.stack import Fault, LocalStack, StackPorts, sample_versions
from tests.support.e2e import (
    CliError,
    TemporalCli,
    assert_split,
    completed_result,
    rds_weights,
    replace_worker,
    restart_server,
    wait_until,
    write_spec,
)

pytestmark = pytest.mark.e2e

V1, V2 = "reviews-v1", "reviews-v2"


@pytest.fixture(scope="module")
def stack(temporal_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """This module's own stack. Its workers (the replacements too) give up a killed worker's
    sticky queue after 1 s instead of the default 10 s (``SLUICE_STICKY_QUEUE_TIMEOUT``)."""
    sticky = {"SLUICE_STICKY_QUEUE_TIMEOUT": "1"}
    running = LocalStack(tmp_path_factory.mktemp("stack"), StackPorts.free(), extra_worker_env=sticky)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def waiting_at(step: int) -> Any:
    return lambda s: s["phase"] == "WaitingForApproval" and (s.get("waitingFor") or {}).get("step") == step


def weights_set(status: dict[str, Any]) -> list[tuple[int, int]]:
    return [(e["step"], e["detail"]["canary"]) for e in status["events"] if e["event"] == "weightsSet"]


def route_activities(cli: TemporalCli, workflow_id: str) -> list[str]:
    return [name for name, _ in cli.activities(workflow_id) if name in ("set_weights", "remove_old_route")]


def test_worker_killed_while_waiting_for_approval(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path
) -> None:
    stack = clean_stack
    workflow_id = f"kill-at-gate-{uuid.uuid4().hex[:8]}"
    steps: list[dict[str, Any]] = [
        {"setWeight": 10},
        {"approval": {}},
        {"setWeight": 50},
        {"approval": {}},
        {"setWeight": 100},
    ]
    cli.start(workflow_id, write_spec(tmp_path, stack.spec_for(steps)))
    cli.wait_status(workflow_id, waiting_at(2))

    old = stack.worker
    old.kill()
    assert old.returncode() == -9
    replace_worker(stack, "worker-after-gate-kill")

    # The first task after a kill waits out the dead worker's sticky queue (1 s here, see `stack`).
    cli.update_result(workflow_id, "approve", {"by": "alice", "step": 2})
    cli.wait_status(workflow_id, waiting_at(4), timeout=30)
    assert rds_weights(stack.envoy.routes_file) == {V1: 50, V2: 50}
    cli.signal(workflow_id, "approve", {"by": "bob"})

    summary = completed_result(cli.result(workflow_id))
    assert weights_set(summary) == [(0, 0), (1, 10), (3, 50), (5, 100)]
    assert [(a["by"], a["step"]) for a in summary["approvals"]] == [("alice", 2), ("bob", 4)]
    assert route_activities(cli, workflow_id) == ["set_weights"] * 4
    assert_split(sample_versions(stack.envoy.url, 200), V1, V2, 100)


def test_worker_killed_inside_an_activity(clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path) -> None:
    stack = clean_stack
    # Only the canary is slow (1 s an answer): step 0 (100/0) samples fast, step 1 (90/10) takes
    # about 4 s for 400 samples, 10 at a time: time enough to kill the worker mid-activity.
    stack.canary.set_fault(Fault(latency_ms=1000))
    workflow_id = f"kill-in-activity-{uuid.uuid4().hex[:8]}"
    spec = stack.spec_for([{"setWeight": 10}, {"setWeight": 50}], samples=400)
    cli.start(workflow_id, write_spec(tmp_path, spec))
    try:
        cli.wait_status(
            workflow_id, lambda s: s["phase"] == "Verifying" and s["currentStep"] == 1, timeout=30
        )

        def sampling() -> bool:
            pending = cli.describe(workflow_id).get("pendingActivities") or []
            return any(
                a["activityType"]["name"] == "sample_traffic"
                and a["state"] == "PENDING_ACTIVITY_STATE_STARTED"
                for a in pending
            )

        wait_until(sampling, 10, "sample_traffic never showed as started")
        old = stack.worker
        old.kill()
        assert old.returncode() == -9
    finally:
        stack.canary.set_fault(Fault())
    replace_worker(stack, "worker-after-activity-kill")

    # The attempt dies with the worker; after the heartbeat timeout Temporal retries it on the
    # new worker.
    summary = completed_result(cli.result(workflow_id, timeout=90))
    assert weights_set(summary) == [(0, 0), (1, 10), (2, 50)]
    assert [v["step"] for v in summary["verifications"]] == [0, 1, 2]
    assert all(v["result"]["passed"] for v in summary["verifications"])
    # (the route claim's own activities are left out: the previous test's claim may still be
    # ending, which this rollout asks about first)
    moved = ("read_route", "set_weights", "sample_traffic")
    started = [(name, attempt) for name, attempt in cli.activities(workflow_id) if name in moved]
    assert [name for name, _ in started] == [
        "read_route",
        *["set_weights", "sample_traffic"] * 3,
    ]
    assert [attempt for name, attempt in started if name == "sample_traffic"] == [1, 2, 1]
    assert rds_weights(stack.envoy.routes_file) == {V1: 50, V2: 50}
    assert_split(sample_versions(stack.envoy.url, 400), V1, V2, 50)


def test_dev_server_killed_and_restarted_with_its_database(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path
) -> None:
    stack = clean_stack
    workflow_id = f"kill-server-{uuid.uuid4().hex[:8]}"
    cli.start(
        workflow_id,
        write_spec(tmp_path, stack.spec_for([{"setWeight": 10}, {"approval": {}}, {"setWeight": 100}])),
    )
    cli.wait_status(workflow_id, waiting_at(2))

    stack.temporal.kill()
    assert stack.temporal.returncode() == -9
    restart_server(stack)

    def answers() -> bool:
        try:
            return waiting_at(2)(cli.status(workflow_id))
        except CliError:
            return False  # the new server is still warming up

    wait_until(answers, 30, "the restarted server does not know the waiting rollout", every=0.5)
    if not stack.worker.running():
        replace_worker(stack, "worker-after-server-kill")
    cli.update_result(workflow_id, "approve", {"by": "carol", "step": 2})

    summary = completed_result(cli.result(workflow_id))
    assert weights_set(summary) == [(0, 0), (1, 10), (3, 100)]
    assert route_activities(cli, workflow_id) == ["set_weights"] * 3
    assert rds_weights(stack.envoy.routes_file) == {V1: 0, V2: 100}
    assert_split(sample_versions(stack.envoy.url, 200), V1, V2, 100)
