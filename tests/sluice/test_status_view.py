"""``sluice status``'s view, rendered on rich's recording console from statuses shaped by the
workflow's own models (``RolloutStatus``), so a field the view reads cannot drift from the query."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from sluice.status_view import go_on_commands, render_status
from workflows.measurements import Measurement, MetricResult
from workflows.models import ApprovalRecord, EventRecord, RouteState, SampleResult, Weights
from workflows.sequential import SequentialEvidence
from workflows.spec import validate_spec
from workflows.state import PauseCondition, RolloutStatus, VerificationRecord, WaitingFor, plan_view

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
ID = "rollout-default-reviews"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def plan(steps: list[dict[str, Any]], **extra: Any) -> RolloutStatus:
    spec = validate_spec(
        {
            "service": "reviews",
            "router": {"kind": "dryRun"},
            "stable": {"host": "reviews-v1"},
            "canary": {"host": "reviews-v2"},
            "steps": steps,
            **extra,
        }
    )
    status = RolloutStatus(rollout_id=ID, service="reviews", namespace="default", steps=plan_view(spec))
    status.started_at = T0
    status.add_event(
        EventRecord(
            at=T0, event="rolloutStarted", step=0, detail={"stable": "reviews-v1", "canary": "reviews-v2"}
        )
    )
    return status


def advance(status: RolloutStatus, current: int, weights: tuple[int, int]) -> None:
    """Steps before ``current`` done, ``current`` running."""
    status.current_step = current
    status.weights = Weights(stable=weights[0], canary=weights[1])
    for step in status.steps:
        step.state = "done" if step.index < current else ("running" if step.index == current else "pending")


def sample(step: int, canary: int, p_value: float, passed: bool = True) -> VerificationRecord:
    result = SampleResult(
        samples=200,
        stable=200 - canary * 2,
        canary=canary * 2,
        expected=Weights(stable=100 - canary, canary=canary),
        p_value=p_value,
        alpha=0.001,
        passed=passed,
        reason="" if passed else f"expected {100 - canary}/{canary}",
    )
    return VerificationRecord(step=step, at=at(step * 10), result=result)


def render(status: RolloutStatus, **options: Any) -> str:
    console = Console(record=True, width=400, color_system=None)
    console.print(render_status(status.as_json(), by="alice", **options))
    return console.export_text()


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def row(text: str, first: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(first))


def test_paused_by_drift_says_what_was_found_and_how_to_go_on() -> None:
    status = plan([{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}])
    advance(status, 1, (90, 10))
    found = "the route holds 70/30, not the 90/10 this rollout set; resume to re-apply, or abort to roll back"
    status.drift = RouteState(stable=70, canary=30, description="envoy:routes.yaml#reviews")
    status.pause_conditions = [PauseCondition(reason="Drift", by="sluicegate", message=found, since=at(30))]
    status.waiting_for = WaitingFor(
        kind="resume", step=1, since=at(30), reason="paused by sluicegate: " + found
    )
    status.phase = "Paused"
    status.add_event(
        EventRecord(at=at(30), event="driftDetected", step=1, detail={"stable": 70, "canary": 30})
    )

    text = render(status)

    assert lines_with(text, "phase  Paused")[0].endswith(f"drift: {found} (since 2026-12-05 09:00:30 UTC)")
    assert "$ sluice resume rollout-default-reviews --by alice" in text
    assert lines_with(text, "▶ 1")[0].split() == ["▶", "1", "setWeight", "10%", "canary", "running"]
    bar = "[" + "█" * 3 + "░" * 27 + "]"  # 10% of 30 columns
    assert f"{bar}  90% stable (reviews-v1) / 10% canary (reviews-v2)" in text
    assert "driftDetected: stable=70, canary=30" in text


def test_four_eyes_gate_with_one_approval_names_who_approved_and_how_many_more() -> None:
    status = plan(
        [{"setWeight": 50}, {"approval": {}}, {"setWeight": 100}],
        approvalPolicy={"approvers": ["alice", "bob", "sre-*"], "required": 2},
    )
    advance(status, 2, (50, 50))
    status.phase = "WaitingForApproval"
    status.steps[2].approved_by = ["bob"]
    status.waiting_for = WaitingFor(
        kind="approval",
        step=2,
        since=at(20),
        hint="approve (or promote) this step",
        approved_by=["bob"],
        still_needed=1,
    )
    status.approvals = [ApprovalRecord(by="bob", step=2, at=at(25), comment="looks fine")]
    status.verifications = [sample(1, 50, 0.42)]
    refusal = {"signal": "approve", "reason": "bob already approved step 2; 1 more distinct approver needed"}
    status.add_event(EventRecord(at=at(26), event="signalRefused", step=2, by="bob", detail=refusal))

    text = render(status)

    assert "waiting for approval of step 2 (approved by bob; 1 more needed)" in lines_with(text, "phase")[0]
    assert "$ sluice approve rollout-default-reviews --step 2 --by alice" in text
    assert lines_with(text, "▶ 2")[0].split()[-6:] == ["running", "1", "of", "2", "approvals:", "bob"]
    assert "step 2  bob  2026-12-05 09:00:25 UTC  (approve by update)  'looks fine'" in text
    assert "step 2: approved by bob; still needed: 1 more distinct approver(s)" in text
    assert "served 100 stable / 100 canary of 200 (expected 50/50)  p=0.42  ok" in text
    assert "refused signals: 1 (not applied)" in text
    refused = "signal approve from bob refused: bob already approved step 2; 1 more distinct approver needed"
    assert len(lines_with(text, refused)) == 2  # in the refusals and among the last events


def test_window_wait_says_until_when_and_offers_the_override() -> None:
    status = plan(
        [{"setWeight": 10}, {"setWeight": 50}],
        windows=[
            {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "17:00", "timezone": "UTC"}
        ],
    )
    advance(status, 2, (90, 10))
    status.phase = "WaitingForWindow"
    status.waiting_for = WaitingFor(
        kind="window",
        step=2,
        since=at(10),
        until=datetime(2026, 12, 7, 9, 0, tzinfo=UTC),
        reason="outside the windows",
    )

    text = render(status)

    assert "waiting for a deployment window until 2026-12-07 09:00:00 UTC: outside the windows" in text
    assert "$ sluice promote rollout-default-reviews --ignore-window --by alice" in text
    assert "goes on by itself then; to go on now:" in text


def test_rolled_back_marks_the_failed_step_and_shows_the_analysis() -> None:
    status = plan(
        [{"setWeight": 10}, {"setWeight": 50}, {"setWeight": 100}, {"removeOld": {}}],
        analysis={
            "interval": "2s",
            "metrics": [
                {"name": "error-rate", "prometheus": {"address": "http://p:9090", "query": "x"}, "max": 0.05}
            ],
        },
    )
    advance(status, 2, (100, 0))
    status.phase, status.error_type = "RolledBack", "AnalysisFailed"
    status.message = (
        "metric error-rate failed: 1 failed measurement(s) > failureLimit 0 (max 0.05); last: 0.2 > max 0.05"
    )
    status.analysis = [
        MetricResult(
            name="error-rate",
            phase="Failed",
            count=3,
            successful=2,
            failed=1,
            message=status.message,
            measurements=[
                Measurement(
                    metric="error-rate",
                    value=0.01,
                    verdict="Successful",
                    message="0.01 within max 0.05",
                    at=at(5),
                ),
                Measurement(
                    metric="error-rate", value=0.2, verdict="Failed", message="0.2 > max 0.05", at=at(7)
                ),
            ],
        )
    ]

    text = render(status)
    from_spec = render(status, limits={"error-rate": "max 0.05 (spec)"})

    assert lines_with(text, "phase  RolledBack")[0].endswith(f"AnalysisFailed: {status.message}")
    assert lines_with(text, "✗ 2")[0].split()[:5] == ["✗", "2", "setWeight", "50%", "canary"]
    assert lines_with(text, "✓ 1") and lines_with(text, "· 4")[0].split()[:3] == ["·", "4", "removeOld:"]
    assert row(text, "error-rate").split() == [
        "error-rate",
        "Failed",
        "0.2",
        "max",
        "0.05",
        "2",
        "1",
        "0",
        "0",
    ]
    assert "max 0.05 (spec)" in row(from_spec, "error-rate")
    assert "$ sluice" not in text  # nothing to send to an ended rollout


def test_a_sequential_metric_shows_its_evidence_and_the_counts_so_far() -> None:
    status = plan(
        [{"setWeight": 10}, {"approval": {}}, {"setWeight": 100}],
        analysis={
            "interval": "10s",
            "metrics": [{"name": "errors-vs-stable", "sequential": {"envoy": {"admin": "http://e:9901"}}}],
        },
    )
    advance(status, 1, (90, 10))
    evidence = SequentialEvidence(
        e_value=3.25,
        threshold=100,
        log_e_value=math.log(3.25),
        canary_errors=12,
        canary_requests=1040,
        stable_errors=80,
        stable_requests=9360,
        intervals=7,
        resets=0,
        step="counted",
    )
    status.analysis = [
        MetricResult(
            name="errors-vs-stable",
            count=8,
            successful=8,
            measurements=[
                Measurement(
                    metric="errors-vs-stable",
                    value=3.25,
                    verdict="Successful",
                    message="evidence 3.25 < 100 (1/alpha), counted: ...",
                    at=at(5),
                    sequential=evidence,
                )
            ],
        )
    ]
    text = render(status, limits={"errors-vs-stable": "evidence < 100 (alpha 0.01, tolerance 0.1)"})
    assert row(text, "errors-vs-stable").split()[:3] == ["errors-vs-stable", "Running", "3.25"]
    assert lines_with(
        text,
        "errors-vs-stable: evidence 3.25 of 100 over 7 intervals; "
        "canary 12/1040 errors (1.15%), stable 80/9360 errors (0.85%)",
    )


def test_succeeded_shows_every_step_done_and_no_command() -> None:
    status = plan([{"setWeight": 50}, {"pause": {"duration": "1m"}}, {"setWeight": 100}, {"removeOld": {}}])
    advance(status, 4, (0, 100))
    status.steps[2].state = "skipped"
    status.steps[4].state = "done"
    status.phase = "Succeeded"
    status.message = status.completion_message()
    status.verifications = [sample(3, 100, 1.0)]

    text = render(status)

    assert lines_with(text, "phase  Succeeded")[0].endswith("rollout complete at 0% stable / 100% canary")
    marks = [line.removeprefix("plan").split()[:1] for line in text.splitlines()]
    assert [m[0] for m in marks if m and m[0] in "✓▶·↷✗"] == ["✓", "✓", "↷", "✓", "✓"]
    assert "removeOld: 100% canary alone" in row(text, "✓ 4")
    assert "[" + "█" * 30 + "]  0% stable (reviews-v1) / 100% canary (reviews-v2)" in text
    assert go_on_commands(status.as_json()) == []


def test_sender_text_cannot_restyle_the_view() -> None:
    status = plan([{"setWeight": 10}, {"approval": {}}])
    advance(status, 2, (90, 10))
    status.phase = "Paused"
    status.pause_conditions = [
        PauseCondition(reason="Manual", by="[red]mallory[/red]", message="[bold]x", since=at(1))
    ]
    status.waiting_for = WaitingFor(kind="approval", step=2, since=at(1))

    text = render(status)

    assert "paused by [red]mallory[/red]: [bold]x" in text
    assert go_on_commands(status.as_json(), by="o'brien") == [
        f"sluice resume {ID} --by 'o'\"'\"'brien'",
        f"sluice approve {ID} --step 2 --by 'o'\"'\"'brien'",
    ]


def test_an_approval_that_timed_out_and_holds_says_so() -> None:
    status = plan([{"setWeight": 10}, {"approval": {"timeout": "4h", "onTimeout": "pause"}}])
    advance(status, 2, (90, 10))
    status.phase = "Paused"
    timed_out = PauseCondition(
        reason="ApprovalTimedOut", by="sluicegate", message="step 2: no approval within 4h", since=at(9)
    )
    status.pause_conditions = [timed_out]
    status.waiting_for = WaitingFor(kind="approval", step=2, since=at(1))

    text = render(status)

    assert "approval timed out: step 2: no approval within 4h" in row(text, "phase")
    assert "approval (timeout 4h, then pause)" in row(text, "▶ 2")
    assert go_on_commands(status.as_json(), by="bob") == [
        f"sluice resume {ID} --by bob",
        f"sluice approve {ID} --step 2 --by bob",
    ]
