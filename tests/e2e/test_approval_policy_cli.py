"""The approval policy end to end through the plain ``temporal`` CLI: a real dev server, a real
Envoy, the demo backends and ``python -m worker``. What Envoy serves is sampled independently of
the workflow, so a refused approval is seen not to have moved any traffic."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from sluice.stack import LocalStack, sample_versions
from tests.support.e2e import (
    TemporalCli,
    assert_split,
    completed_result,
    failure_of,
    rds_weights,
    write_spec,
)

pytestmark = pytest.mark.e2e

V1, V2 = "reviews-v1", "reviews-v2"
FOUR_EYES = {"approvers": ["alice", "bob", "sre-*"], "required": 2}


def waiting_at(step: int) -> Any:
    return lambda s: s["phase"] == "WaitingForApproval" and (s.get("waitingFor") or {}).get("step") == step


def served(stack: LocalStack, canary_weight: int) -> None:
    assert_split(sample_versions(stack.envoy.url, 400), V1, V2, canary_weight)


def weights_set(status: dict[str, Any]) -> list[tuple[int, int]]:
    return [(e["step"], e["detail"]["canary"]) for e in status["events"] if e["event"] == "weightsSet"]


def refused_update(cli: TemporalCli, workflow_id: str, name: str, payload: dict[str, Any]) -> str:
    """The CLI's output for an update the validator refused (the test fails if it was accepted)."""
    done = cli.update(workflow_id, name, payload, check=False)
    assert done.returncode != 0, (payload, done.stdout)
    return done.stderr + done.stdout


def refused_signals(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (e["by"], e["detail"]["signal"], e["detail"]["reason"])
        for e in status["events"]
        if e["event"] == "signalRefused"
    ]


def start(stack: LocalStack, cli: TemporalCli, tmp_path: Path, steps: list[dict[str, Any]]) -> str:
    workflow_id = f"policy-{uuid.uuid4().hex[:8]}"
    spec = {**stack.spec_for(steps), "requestedBy": "sre-carol", "approvalPolicy": FOUR_EYES}
    cli.start(workflow_id, write_spec(tmp_path, spec, f"{workflow_id}.json"))
    return workflow_id


def test_four_eyes_gate_needs_two_different_allowed_approvers(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path
) -> None:
    stack = clean_stack
    workflow_id = start(stack, cli, tmp_path, [{"setWeight": 50}, {"approval": {}}, {"setWeight": 100}])
    status = cli.wait_status(workflow_id, waiting_at(2))
    assert status["requestedBy"] == "sre-carol"
    assert (status["steps"][2]["approvalsRequired"], status["waitingFor"]["stillNeeded"]) == (2, 2)

    answer = cli.update_result(workflow_id, "approve", {"by": "alice", "step": 2})
    assert answer["message"] == "step 2: approval 1 of 2 by alice; 1 more distinct approver needed"
    assert answer["phase"] == "WaitingForApproval"

    refusals = [
        ({"by": "alice"}, "alice already approved step 2; 1 more distinct approver needed"),
        ({"by": "mallory"}, "mallory may not approve (approvers: alice, bob, sre-*)"),
        (
            {"by": "sre-carol"},
            "sre-carol requested this rollout and may not approve it (allowRequester: false)",
        ),
    ]
    for payload, reason in refusals:
        assert reason in refused_update(cli, workflow_id, "approve", payload)
        cli.signal(workflow_id, "approve", payload)
    status = cli.wait_status(workflow_id, lambda s: len(refused_signals(s)) == len(refusals))
    assert refused_signals(status) == [(p["by"], "approve", reason) for p, reason in refusals]
    assert waiting_at(2)(status)
    assert (status["waitingFor"]["approvedBy"], status["waitingFor"]["stillNeeded"]) == (["alice"], 1)
    assert rds_weights(stack.envoy.routes_file) == {V1: 50, V2: 50}  # no refusal moved traffic
    served(stack, 50)

    cli.signal(workflow_id, "approve", {"by": "sre-dan", "comment": "second pair of eyes"})
    summary = completed_result(cli.result(workflow_id))
    assert summary["phase"] == "Succeeded"
    assert [(a["by"], a["step"], a["via"]) for a in summary["approvals"]] == [
        ("alice", 2, "update"),
        ("sre-dan", 2, "signal"),
    ]
    assert summary["steps"][2]["approvedBy"] == ["alice", "sre-dan"]
    assert weights_set(summary) == [(0, 0), (1, 50), (3, 100)]
    served(stack, 100)


def test_promote_counts_as_one_approval_and_full_promote_needs_an_allowed_approver(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path
) -> None:
    stack = clean_stack
    steps: list[dict[str, Any]] = [
        {"setWeight": 10},
        {"approval": {}},
        {"setWeight": 50},
        {"approval": {}},
        {"setWeight": 100},
    ]
    workflow_id = start(stack, cli, tmp_path, steps)
    cli.wait_status(workflow_id, waiting_at(2))

    reason = "mallory may not approve (approvers: alice, bob, sre-*)"
    assert reason in refused_update(cli, workflow_id, "promote", {"by": "mallory", "full": True})
    assert reason in refused_update(cli, workflow_id, "promote", {"by": "mallory"})
    # From here a full promotion would skip step 4, a four-eyes gate: one person may not.
    skipping = refused_update(cli, workflow_id, "promote", {"by": "bob", "full": True})
    assert "a full promotion would skip step 4, which needs 2 distinct approvers" in skipping
    answer = cli.update_result(workflow_id, "promote", {"by": "alice"})
    assert answer["message"] == (
        "promoted by alice; step 2: approval 1 of 2 by alice; 1 more distinct approver needed"
    )
    assert "alice already approved step 2" in refused_update(cli, workflow_id, "promote", {"by": "alice"})
    assert rds_weights(stack.envoy.routes_file) == {V1: 90, V2: 10}
    served(stack, 10)

    cli.update_result(workflow_id, "promote", {"by": "bob"})
    status = cli.wait_status(workflow_id, waiting_at(4))
    assert [(a["by"], a["kind"]) for a in status["approvals"]] == [("alice", "promote"), ("bob", "promote")]
    served(stack, 50)

    # A full promote at a four-eyes gate is one approval: 100% waits for the second.
    answer = cli.update_result(workflow_id, "promote", {"by": "bob", "full": True})
    assert answer["message"].startswith("promoted by bob: going straight to 100% canary once step 4")
    status = cli.status(workflow_id)
    assert waiting_at(4)(status) and status["waitingFor"]["stillNeeded"] == 1
    cli.update_result(workflow_id, "approve", {"by": "sre-ann", "step": 4})
    summary = completed_result(cli.result(workflow_id))
    assert weights_set(summary) == [(0, 0), (1, 10), (3, 50), (4, 100)]
    assert [s["state"] for s in summary["steps"]][-1] == "skipped"  # setWeight 100: already there
    served(stack, 100)


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        ({"approvers": ["alice", "bob"], "required": 3},
         "approvalPolicy.required: 3 distinct approvers needed but approvers names only 2 (alice, bob)"),
        ({"approvers": ["sre-carol"]},
         "approvalPolicy.approvers: sre-carol is the only approver but requested this rollout"),
    ],
)  # fmt: skip
def test_a_policy_no_one_can_satisfy_is_refused_at_start(
    clean_stack: LocalStack, cli: TemporalCli, tmp_path: Path, policy: dict[str, Any], problem: str
) -> None:
    stack = clean_stack
    before = stack.envoy.routes_file.read_bytes()
    workflow_id = f"policy-bad-{uuid.uuid4().hex[:8]}"
    spec = {**stack.spec_for([{"setWeight": 10}, {"approval": {}}]), "requestedBy": "sre-carol"}
    cli.start(workflow_id, write_spec(tmp_path, {**spec, "approvalPolicy": policy}, f"{workflow_id}.json"))
    failure = failure_of(cli.result(workflow_id, timeout=15))
    assert failure["applicationFailureInfo"]["type"] == "InvalidSpec"
    assert problem in failure["message"], failure["message"]
    assert stack.envoy.routes_file.read_bytes() == before  # no traffic touched
    served(stack, 0)
