"""The Temporal UI's summary, details and timeline names, as pure functions of the spec and
state. What a real server and UI show is in test_ui_metadata.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tests.support.rollouts import dry_run_spec
from workflows import timeline
from workflows.carried import RolloutState, derive_phase
from workflows.models import ApprovalRecord, SampleResult, Weights
from workflows.spec import RemoveOldStep, validate_spec
from workflows.state import VerificationRecord, WaitingFor
from workflows.ui_details import MAX_LINE, CurrentDetails, current_details, static_details, static_summary

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
STEPS: list[dict[str, Any]] = [
    {"setWeight": 10},
    {"approval": {"timeout": "4h"}},
    {"setWeight": 50},
    {"pause": {"duration": "10m"}},
    {"setWeight": 100},
    {"approval": {}},
    {"removeOld": {}},
]


def envoy_spec(**extra: Any) -> dict[str, Any]:
    router = {"kind": "envoy", "routesFile": "rds/routes.yaml", "routeConfig": "reviews"}
    return {**dry_run_spec(STEPS, service="reviews", router=router), **extra}


def at_gate(**extra: Any) -> RolloutState:
    """A rollout at the 4h gate (step 2) after 10% was set and verified."""
    spec = validate_spec(envoy_spec(**extra))
    state = RolloutState.fresh("rollout-default-reviews", spec, None)
    state.approval_rules = spec.approval_rules()
    status = state.status
    status.current_step, status.weights = 2, Weights(stable=90, canary=10)
    status.waiting_for = WaitingFor(
        kind="approval",
        step=2,
        since=NOW,
        until=NOW + timedelta(hours=4),
        hint="approve (or promote) this step",
    )
    result = SampleResult(
        samples=200, stable=181, canary=19, expected=Weights(stable=90, canary=10), p_value=0.66, alpha=0.01,
        passed=True,
    )  # fmt: skip
    status.verifications.append(VerificationRecord(step=1, at=NOW, result=result))
    state.show_gate_progress(2)
    status.phase = derive_phase(state)
    return state


def test_the_static_summary_is_one_line_naming_service_versions_steps_and_router() -> None:
    spec = validate_spec(envoy_spec())
    assert static_summary(spec) == "reviews: reviews-v1 → reviews-v2, 7 steps (envoy)"
    assert "\n" not in static_summary(spec)


def test_the_static_details_list_the_plan_and_its_checks() -> None:
    verify = {"url": "http://127.0.0.1:10000/", "header": "x-version", "samples": 100}
    spec = validate_spec(envoy_spec(requestedBy="carol", verify=verify))
    details = static_details(spec)
    assert details.splitlines()[:2] == [
        "**reviews** in namespace `default`, through Envoy route config `reviews` in `rds/routes.yaml`",
        "requested by carol",
    ]
    assert "- step 0: read the route, set 100% reviews-v1 / 0% reviews-v2" in details
    assert "- step 2: approval (timeout 4h, then abort)" in details
    assert "- step 7: removeOld: 100% canary alone" in details
    assert "- verify: 100 samples (header x-version) after every traffic change" in details
    assert "127.0.0.1:10000" not in details  # the URL stays in the spec, not in the UI


def test_current_details_at_a_gate_say_phase_step_traffic_wait_approvals_and_verification() -> None:
    state = at_gate()
    details = CurrentDetails(lambda text: None)
    details.name_versions(validate_spec(envoy_spec()))
    text = current_details(state, details.stable, details.canary)
    assert text.splitlines() == [
        "**WaitingForApproval** · step 2 of 7: approval (timeout 4h, then abort)",
        "",
        "- **traffic:** 90% reviews-v1 · 10% reviews-v2",
        "- **waiting for:** approval at step 2 until 2026-12-05 16:00:00 UTC; approve (or promote) this step",
        "- **approvals:** none yet · 1 more needed",
        "- **last verification** (step 1): passed, 181 reviews-v1 / 19 reviews-v2 of 200, p=0.66",
    ]


def test_current_details_show_who_approved_and_who_is_still_needed() -> None:
    policy = {"required": 2}
    state = at_gate(approvalPolicy=policy)
    state.count_approval(ApprovalRecord(by="alice", step=2, at=NOW))
    assert "- **approvals:** alice · 1 more needed" in current_details(state)


def test_current_details_show_a_pause_and_how_a_rollout_ended() -> None:
    state = at_gate()
    state.pause("Manual", "bob", "checking dashboards", NOW)
    state.status.phase = derive_phase(state)
    text = current_details(state)
    assert text.startswith("**Paused** · step 2")
    assert "- **paused** by bob: checking dashboards" in text

    state.clear_pauses()
    state.status.waiting_for = None
    state.stage = "RolledBack"
    state.status.phase = derive_phase(state)
    state.status.error_type, state.status.message = "RolloutAborted", "aborted by bob: " + "x" * 400
    outcome = current_details(state).splitlines()[-1]
    assert outcome.startswith("- **outcome:** RolloutAborted: aborted by bob: xxx")
    assert len(outcome) == MAX_LINE and outcome.endswith("…")


def test_current_details_are_set_only_when_they_change() -> None:
    shown: list[str] = []
    details = CurrentDetails(shown.append)
    state = at_gate()
    details.show(state)
    details.show(state)
    assert len(shown) == 1
    state.status.waiting_for = None
    details.show(state)
    assert len(shown) == 2 and "waiting for" not in shown[-1]


def test_timeline_names_say_what_each_activity_and_timer_is() -> None:
    assert timeline.set_weight(Weights(stable=90, canary=10)) == "setWeight 10"
    assert timeline.verify_split(Weights(stable=90, canary=10)) == "verify split 90/10"
    assert timeline.verify_split(Weights(stable=100, canary=0), rolling_back=True) == (
        "verify split 100/0 after rollback"
    )
    assert timeline.approval_gate(2, timedelta(hours=4)) == "approval gate step 2 (timeout 4h)"
    assert timeline.bake(1, timedelta(seconds=7)) == "bake 7s (step 1)"
    assert timeline.notify("team-chat", "waitingForApproval") == "notify team-chat: waitingForApproval"
    old = RemoveOldStep(deployment="reviews-v1")
    assert timeline.retire_old(old) == "scaleToZero reviews-v1"
    assert timeline.retire_delay(old) == "wait 30s before retiring reviews-v1"
    opening = NOW + timedelta(hours=20)
    assert timeline.window_wait(1, opening, NOW + timedelta(days=7)) == (
        "window wait until 2026-12-06 08:00:00 UTC (step 1)"
    )
    assert timeline.window_wait(1, NOW + timedelta(days=30), NOW + timedelta(days=7)) == (
        "window wait, ask again at 2026-12-12 12:00:00 UTC (step 1)"
    )
    assert (
        timeline.utc(datetime(2026, 12, 5, 9, 0, tzinfo=timezone(timedelta(hours=1))))
        == "2026-12-05 08:00:00 UTC"
    )
