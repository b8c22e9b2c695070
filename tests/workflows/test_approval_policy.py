"""The approval policy: its spec keys, its rule and how approve/promote apply it, without a server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from workflows.approval_policy import ANYONE, ApprovalPolicy, approver_refusal, still_needed
from workflows.carried import RolloutState, derive_phase
from workflows.messages import MESSAGES
from workflows.models import ApprovalRecord, ApproveInput, PromoteInput, ResumeInput
from workflows.spec import SpecError, validate_spec
from workflows.state import WaitingFor

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
GATE = 2


def spec(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "service": "reviews",
        "router": {"kind": "dryRun"},
        "stable": {"host": "reviews-v1"},
        "canary": {"host": "reviews-v2"},
        "steps": [{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}, {"pause": {"duration": "1h"}}],
    }
    data.update(changes)
    return data


def policy(**keys: Any) -> ApprovalPolicy:
    return ApprovalPolicy.model_validate(keys)


def approved(*names: str, step: int = GATE) -> list[ApprovalRecord]:
    return [ApprovalRecord(by=name, step=step, at=NOW) for name in names]


# -- the rule ------------------------------------------------------------------------------------

SRE = policy(approvers=["alice", "bob", "sre-*"], required=2)


@pytest.mark.parametrize(
    ("rule", "by", "requested_by", "so_far", "refusal"),
    [
        (SRE, "mallory", None, [], "mallory may not approve (approvers: alice, bob, sre-*)"),
        (SRE, "SRE-ann", None, [], "SRE-ann may not approve (approvers: alice, bob, sre-*)"),
        (SRE, "bob", None, approved("bob"), "bob already approved step 2; 1 more distinct approver needed"),
        (policy(required=3), "bob", None, approved("bob"),
         "bob already approved step 2; 2 more distinct approvers needed"),
        (ANYONE, "carol", "carol", [],
         "carol requested this rollout and may not approve it (allowRequester: false)"),
        (SRE, "carol", "carol", [], "carol may not approve (approvers: alice, bob, sre-*)"),
    ],
)  # fmt: skip
def test_refusals_name_the_rule(
    rule: ApprovalPolicy, by: str, requested_by: str | None, so_far: list[ApprovalRecord], refusal: str
) -> None:
    assert approver_refusal(rule, by, requested_by, so_far) == refusal


@pytest.mark.parametrize(
    ("rule", "by", "requested_by", "so_far"),
    [
        (ANYONE, "anyone", None, []),
        (SRE, "alice", "carol", []),
        (SRE, "sre-ann", None, approved("alice")),  # a glob
        (SRE, "bob", None, approved("alice")),
        (policy(allow_requester=True), "carol", "carol", []),
        (ANYONE, "carol", None, []),  # no requestedBy: nobody is the requester
    ],
)
def test_allowed_approvers(
    rule: ApprovalPolicy, by: str, requested_by: str | None, so_far: list[ApprovalRecord]
) -> None:
    assert approver_refusal(rule, by, requested_by, so_far) is None


def test_still_needed_counts_distinct_approvers() -> None:
    assert still_needed(SRE, []) == 2
    assert still_needed(SRE, approved("alice", "alice")) == 1
    assert still_needed(SRE, approved("alice", "bob")) == 0
    assert still_needed(ANYONE, approved("x")) == 0


# -- the spec keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"approvalPolicy": {"approvers": ["alice", "bob"], "required": 3}},
         "approvalPolicy.required: 3 distinct approvers needed but approvers names only 2 (alice, bob)"),
        ({"approvalPolicy": {"approvers": []}}, "approvalPolicy.approvers: must name at least one approver"),
        ({"approvalPolicy": {"required": 0}}, "approvalPolicy.required: must be at least 1, got 0"),
        ({"approvalPolicy": {"required": "2"}}, "approvalPolicy.required: Input should be a valid integer"),
        ({"approvalPolicy": {"allowRequester": "yes"}}, "approvalPolicy.allowRequester: Input should be"),
        ({"approvalPolicy": {"approvers": ["a", " "]}}, "approvalPolicy.approvers[1]: must name a person"),
        ({"approvalPolicy": {"approvers": ["bob", "bob"]}}, "approvalPolicy.approvers: lists bob more than"),
        ({"approvalPolicy": {"aprovers": ["bob"]}}, "approvalPolicy.aprovers: unknown key"),
        ({"requestedBy": ""}, "requestedBy: must name a person"),
        ({"requestedBy": "carol", "approvalPolicy": {"approvers": ["carol"]}},
         "approvalPolicy.approvers: carol is the only approver but requested this rollout and may not "
         "approve it (allowRequester: false)"),
        ({"requestedBy": "carol", "approvalPolicy": {"approvers": ["alice", "carol"], "required": 2}},
         "approvalPolicy.required: 2 distinct approvers needed but only 1 may approve (alice): carol "
         "requested this rollout (allowRequester: false)"),
        ({"steps": [{"setWeight": 10}, {"approval": {"policy": {"approvers": ["alice"], "required": 2}}}]},
         "steps[1].approval.policy.required: 2 distinct approvers needed but approvers names only 1 (alice)"),
        ({"steps": [{"approval": {"timeout": "1h", "onTimeout": "hold"}}]}, "steps[0].approval.onTimeout"),
    ],
)  # fmt: skip
def test_bad_policies_are_refused_naming_the_field(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(spec(**changes))
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    "changes",
    [
        {"approvalPolicy": {"approvers": ["alice", "sre-*"], "required": 3}},  # a glob may match many
        {"requestedBy": "carol", "approvalPolicy": {"approvers": ["carol"], "allowRequester": True}},
        {"requestedBy": "carol", "approvalPolicy": {"approvers": ["carol", "alice"]}},
        {"requestedBy": "carol"},
    ],
)
def test_policies_that_some_people_can_satisfy_are_accepted(changes: dict[str, Any]) -> None:
    validate_spec(spec(**changes))


def test_a_gates_own_policy_replaces_the_specs_whole() -> None:
    rollout = validate_spec(
        spec(
            requestedBy="carol",
            approvalPolicy={"approvers": ["alice", "bob"], "required": 2},
            steps=[
                {"setWeight": 10},
                {"approval": {"policy": {"approvers": ["sre-*"]}, "timeout": "4h", "onTimeout": "pause"}},
                {"setWeight": 50},
                {"approval": {}},
            ],
        )
    )
    rules = rollout.approval_rules()
    assert rules.requested_by == "carol"
    assert rules.at(2) == ApprovalPolicy(approvers=["sre-*"])  # required 1, not the spec's 2
    assert rules.at(4) == rules.at(None) == ApprovalPolicy(approvers=["alice", "bob"], required=2)
    assert validate_spec(spec()).approval_rules().at(2) == ANYONE


# -- approve and promote under the policy --------------------------------------------------------


def at_gate(**changes: Any) -> RolloutState:
    """A rollout waiting at the approval gate of plan step 2, its rules taken from the spec."""
    rollout = validate_spec(spec(**changes))
    state = RolloutState.fresh("r", rollout, None)
    state.approval_rules = rollout.approval_rules()
    state.status.current_step = GATE
    state.status.waiting_for = WaitingFor(kind="approval", step=GATE, since=NOW)
    state.show_gate_progress(GATE)
    return state


FOUR_EYES = {
    "requestedBy": "carol",
    "approvalPolicy": {"approvers": ["alice", "bob", "sre-*"], "required": 2},
}


def send(state: RolloutState, name: str, **payload: Any) -> str:
    """Check then apply, as the inbox does; the refusal or the answer."""
    message = MESSAGES[name]
    request = message.model.model_validate(payload)
    refusal = message.check(state, request)
    return (
        refusal if refusal is not None else "accepted: " + message.apply(state, request, "update", NOW).answer
    )


def test_four_eyes_needs_two_distinct_allowed_approvers() -> None:
    state = at_gate(**FOUR_EYES)
    assert state.status.steps[GATE].approvals_required == 2
    assert state.status.waiting_for is not None and state.status.waiting_for.still_needed == 2

    assert send(state, "approve", by="alice") == (
        "accepted: step 2: approval 1 of 2 by alice; 1 more distinct approver needed"
    )
    assert state.released_steps == []
    waiting = state.status.waiting_for
    assert (waiting.approved_by, waiting.still_needed) == (["alice"], 1)
    assert (
        send(state, "approve", by="alice") == "alice already approved step 2; 1 more distinct approver needed"
    )
    assert send(state, "approve", by="mallory") == "mallory may not approve (approvers: alice, bob, sre-*)"
    assert send(state, "approve", by="carol") == "carol may not approve (approvers: alice, bob, sre-*)"

    assert send(state, "approve", by="sre-dan") == "accepted: step 2 approved by alice, sre-dan (2 of 2)"
    assert state.released_steps == [GATE]
    assert state.status.steps[GATE].approved_by == ["alice", "sre-dan"]
    assert (waiting.approved_by, waiting.still_needed) == (["alice", "sre-dan"], 0)
    assert [(a.by, a.step) for a in state.status.approvals] == [("alice", 2), ("sre-dan", 2)]
    assert send(state, "approve", by="bob") == "step 2 was already approved by sre-dan; it is moving on"


def test_the_requester_is_refused_unless_allowed() -> None:
    state = at_gate(requestedBy="carol")
    assert send(state, "approve", by="carol") == (
        "carol requested this rollout and may not approve it (allowRequester: false)"
    )
    assert send(state, "promote", by="carol") == (
        "carol requested this rollout and may not approve it (allowRequester: false)"
    )
    allowed = at_gate(requestedBy="carol", approvalPolicy={"allowRequester": True})
    assert send(allowed, "approve", by="carol") == "accepted: step 2 approved by carol"


def test_without_a_policy_one_approval_by_anyone_passes_as_before() -> None:
    state = at_gate()
    assert state.status.steps[GATE].approvals_required == 1
    assert send(state, "approve", by="anyone") == "accepted: step 2 approved by anyone"
    assert state.released_steps == [GATE]


def test_promote_at_a_gate_is_one_approval_under_the_policy() -> None:
    state = at_gate(**FOUR_EYES)
    assert send(state, "promote", by="mallory") == "mallory may not approve (approvers: alice, bob, sre-*)"
    assert send(state, "promote", by="alice") == (
        "accepted: promoted by alice; step 2: approval 1 of 2 by alice; 1 more distinct approver needed"
    )
    assert state.released_steps == []
    assert (
        send(state, "promote", by="alice") == "alice already approved step 2; 1 more distinct approver needed"
    )
    assert send(state, "approve", by="bob") == "accepted: step 2 approved by alice, bob (2 of 2)"
    assert state.released_steps == [GATE]
    assert [(a.by, a.kind) for a in state.status.approvals] == [("alice", "promote"), ("bob", "approve")]


def test_full_promote_and_ignore_window_need_an_allowed_approver() -> None:
    state = at_gate(**FOUR_EYES)
    assert send(state, "promote", by="mallory", full=True) == (
        "mallory may not approve (approvers: alice, bob, sre-*)"
    )
    assert send(state, "promote", by="carol", full=True).startswith("carol may not approve")
    assert state.full_promotion is None and state.status.approvals == []
    accepted = send(state, "promote", by="bob", full=True)
    assert accepted == (
        "accepted: promoted by bob: going straight to 100% canary once step 2 has its approvals; "
        "step 2: approval 1 of 2 by bob; 1 more distinct approver needed"
    )
    assert state.full_promotion is not None and state.released_steps == []

    baking = at_gate(**FOUR_EYES)  # away from a gate, the spec's policy says who is allowed
    baking.status.steps[GATE].state = "done"
    baking.status.waiting_for = WaitingFor(kind="bake", step=4, since=NOW)
    assert send(baking, "promote", by="mallory") == "accepted: promoted by mallory"  # skipping a bake
    baking.released_steps.clear()
    assert send(baking, "promote", by="mallory", full=True).startswith("mallory may not approve")
    held = baking  # now held by a deployment window: overriding it needs an allowed approver
    held.status.waiting_for = WaitingFor(kind="window", step=4, since=NOW, reason="outside windows")
    assert send(held, "promote", by="mallory", ignoreWindow=True).startswith("mallory may not approve")
    assert send(held, "promote", by="sre-ann", full=True, ignoreWindow=True) == (
        "accepted: deployment window overridden by sre-ann: moving traffic now and straight to 100% canary"
    )
    assert PromoteInput.model_validate({"by": "x", "ignoreWindow": True}).ignore_window


def test_a_full_promotion_cannot_skip_a_gate_its_sender_could_not_pass_alone() -> None:
    steps = [{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}, {"approval": {}}, {"setWeight": 100}]
    four_eyes_later = at_gate(
        steps=steps, requestedBy="carol", approvalPolicy={"approvers": ["alice", "bob"], "required": 2}
    )
    assert send(four_eyes_later, "promote", by="alice", full=True) == (
        "a full promotion would skip step 4, which needs 2 distinct approvers; approve the gates instead"
    )
    assert four_eyes_later.full_promotion is None and four_eyes_later.status.approvals == []

    steps[3] = {"approval": {"policy": {"approvers": ["sre-*"]}}}
    sre_later = at_gate(steps=steps)
    assert send(sre_later, "promote", by="alice", full=True) == (
        "a full promotion would skip step 4, and alice may not approve (approvers: sre-*)"
    )
    assert send(sre_later, "promote", by="sre-ann", full=True) == (
        "accepted: promoted by sre-ann: going straight to 100% canary"
    )


def test_abort_stays_open_to_everyone() -> None:
    state = at_gate(**FOUR_EYES)
    assert send(state, "abort", by="mallory", reason="p99") == (
        "accepted: abort requested by mallory: rolling back to 100% stable"
    )


def test_a_timed_out_gate_holds_until_its_approvals_or_a_resume() -> None:
    state = at_gate(**FOUR_EYES)
    state.pause("ApprovalTimedOut", "sluicegate", "step 2: no approval within 4h", NOW)
    assert derive_phase(state) == "Paused"

    assert send(state, "approve", by="alice").startswith("accepted: step 2: approval 1 of 2")
    assert derive_phase(state) == "Paused"  # still short of its approvals: still held
    assert send(state, "approve", by="bob") == "accepted: step 2 approved by alice, bob (2 of 2)"
    assert state.status.pause_conditions == []  # the gate passed: its hold ended with it

    resumed = at_gate(**FOUR_EYES)
    resumed.pause("ApprovalTimedOut", "sluicegate", "step 2: no approval within 4h", NOW)
    MESSAGES["resume"].apply(resumed, ResumeInput(by="erin"), "update", NOW)
    assert derive_phase(resumed) == "WaitingForApproval" and resumed.released_steps == []


def test_the_policy_is_not_carried_the_spec_is() -> None:
    state = at_gate(**FOUR_EYES)
    MESSAGES["approve"].apply(state, ApproveInput(by="alice"), "signal", NOW)
    carried = RolloutState.model_validate(state.model_dump(mode="json"))
    assert "approvalRules" not in state.model_dump(mode="json")
    assert carried.approval_rules.at(GATE) == ANYONE  # until the next run takes it from the spec
    assert carried.status.requested_by == "carol"
    assert carried.status.steps[GATE].approved_by == ["alice"]
