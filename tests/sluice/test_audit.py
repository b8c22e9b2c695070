"""The audit's history parsing on real histories (the saved ones the replay test replays)."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from temporalio.client import WorkflowHistory

from sluice.audit import RunHistory, audit_rows, to_csv, to_json
from sluice.audit_table import print_audit
from sluice.identity import claimed_user, identity_user, is_mismatch

HISTORIES = Path(__file__).resolve().parents[1] / "histories" / "2026-12-05-83189da"
GATES_HISTORIES = HISTORIES.parent / "2026-12-05-gates"


def runs_of(*names: str, edit: Any = None, folder: Path = HISTORIES) -> list[RunHistory]:
    runs = []
    for name in names:
        data = json.loads((folder / f"{name}.json").read_text())
        if edit is not None:
            edit(data)
        runs.append(RunHistory(name, WorkflowHistory.from_json("rollout", data).events))
    return runs


def summary(runs: list[RunHistory], **kwargs: Any) -> list[tuple[Any, ...]]:
    return [(r.run, r.step, r.action, r.via, r.by, r.outcome) for r in audit_rows(runs, **kwargs)]


def test_signals_get_the_step_and_the_refusal_the_rollout_recorded() -> None:
    rows = audit_rows(runs_of("approvals_by_signal"))
    assert [(r.step, r.action, r.via, r.by, r.outcome) for r in rows if r.via == "signal"] == [
        (2, "approve", "signal", "mallory", "refused"),
        (2, "approve", "signal", "42", "refused"),
        (2, "approve", "signal", "bob", "applied"),
        (4, "approve", "signal", "carol", "applied"),
    ]
    assert rows[3].detail == "the rollout waits for approval at step 2, not step 7"
    assert rows[0].action == "start" and rows[0].identity.endswith("@vm")
    assert [(r.step, r.weights) for r in rows if r.action == "set_weights"] == [
        (0, {"stable": 100, "canary": 0}),
        (1, {"stable": 90, "canary": 10}),
        (3, {"stable": 50, "canary": 50}),
        (5, {"stable": 0, "canary": 100}),
    ]
    # The recorder's Python client kept the SDK default identity <pid>@<host>: it names nobody.
    assert all(r.identity_user is None for r in rows)
    assert [r.mismatch for r in rows if r.by] == [True] * 4


def test_a_window_override_is_a_promote_at_the_step_it_released() -> None:
    rows = audit_rows(runs_of("deployment_window_override", folder=GATES_HISTORIES))
    promotes = [(r.step, r.via, r.by, r.outcome) for r in rows if r.action == "promote"]
    assert promotes == [
        (1, "signal", "mallory", "refused"),  # a plain promote at a window wait
        (1, "signal", "alice", "applied"),  # ignoreWindow: recorded as windowOverridden
        (2, "update", "alice", "accepted"),
    ]


def test_updates_take_the_step_their_result_answered() -> None:
    rows = summary(runs_of("default_plan_approved_by_update"))
    assert [row for row in rows if row[3] == "update"] == [
        (1, 2, "approve", "update", "alice", "accepted"),
        (1, 4, "approve", "update", "alice", "accepted"),
        (1, 6, "approve", "update", "alice", "accepted"),
    ]
    assert rows[-1][1:4] == (7, "remove_old_route", "activity")


def test_the_rollback_change_is_marked_as_the_rollback() -> None:
    rows = audit_rows(runs_of("abort_at_a_gate"))
    abort = next(r for r in rows if r.action == "abort")
    assert (abort.step, abort.by, abort.outcome, abort.detail) == (2, "dave", "accepted", "p99 too high")
    last = rows[-1]
    assert (last.action, last.step, last.weights, last.detail) == (
        "set_weights",
        2,
        {"stable": 100, "canary": 0},
        "rollback",
    )


def test_a_cancel_request_is_a_human_action_with_its_identity() -> None:
    rows = audit_rows(runs_of("cancel_while_paused"))
    cancel = next(r for r in rows if r.action == "cancel")
    assert (cancel.via, cancel.outcome, cancel.by, cancel.mismatch) == ("request", "requested", "", False)
    assert cancel.identity.endswith("@vm")
    assert rows[-1].detail == "rollback"


def test_misspelt_and_lax_signals_are_listed_as_refused() -> None:
    rows = [r for r in audit_rows(runs_of("lax_signal_payloads")) if r.via == "signal"]
    assert [(r.action, r.outcome) for r in rows] == [
        ("aprove", "refused"),
        ("approve", "refused"),
        ("promote", "refused"),
    ]
    assert rows[0].detail.startswith("unknown signal 'aprove'")


def test_every_run_of_a_continued_rollout_in_one_list() -> None:
    names = [f"continue_as_new_in_a_wait{suffix}" for suffix in ("", ".run2", ".run3", ".run4")]
    runs = runs_of(*names)
    rows = audit_rows(runs)
    refused = [r for r in rows if r.outcome == "refused"]
    assert [r.by for r in refused] == [f"mallory-{n}" for n in range(30)]
    assert {r.run for r in refused} == {1, 2, 3}
    assert all(r.step == 2 for r in refused)
    assert [(r.run, r.step, r.by, r.outcome) for r in rows if r.via == "update"] == [
        (4, 2, "alice", "accepted")
    ]
    assert [r.step for r in rows if r.action == "set_weights"] == [0, 1, 3]
    assert [r.run_id for r in rows] == sorted((r.run_id for r in rows), key=names.index)
    assert to_json("rollout", runs, rows)["runs"] == names


def test_without_the_rollouts_records_signals_are_delivered_without_a_step() -> None:
    """The last run still running, its status query unanswered: history alone."""
    names = [f"continue_as_new_in_a_wait{suffix}" for suffix in ("", ".run2")]
    runs = runs_of(*names)
    run2 = runs[1]
    running = RunHistory(run2.run_id, run2.events[:-1])  # cut off its continue-as-new
    rows = audit_rows([runs[0], running])
    assert {r.outcome for r in rows if r.run == 1 and r.via == "signal"} == {"refused"}
    assert {(r.step, r.outcome) for r in rows if r.run == 2 and r.via == "signal"} == {(None, "delivered")}


def test_the_start_compares_requested_by_with_who_started_it() -> None:
    def claim(requested_by: str) -> Any:
        def edit(data: dict[str, Any]) -> None:
            payload = data["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
            spec = json.loads(base64.b64decode(payload["data"]))
            spec["requestedBy"] = requested_by
            payload["data"] = base64.b64encode(json.dumps(spec).encode()).decode()
            data["events"][0]["workflowExecutionStartedEventAttributes"]["identity"] = "temporal-cli:carol@ci"

        return edit

    start = audit_rows(runs_of("approvals_by_signal", edit=claim("carol")))[0]
    assert (start.action, start.by, start.identity, start.mismatch) == (
        "start",
        "carol",
        "temporal-cli:carol@ci",
        False,
    )
    start = audit_rows(runs_of("approvals_by_signal", edit=claim("dave")))[0]
    assert start.mismatch


def test_a_principal_the_server_authenticated_outranks_the_client_identity() -> None:
    """Servers with Principal Attribution stamp the authenticated caller on each event."""

    def authenticate(data: dict[str, Any]) -> None:
        signals = [e for e in data["events"] if "workflowExecutionSignaledEventAttributes" in e]
        signals[2]["principal"] = {"type": "jwt", "name": "bob@example.com"}  # bob's approval
        signals[3]["principal"] = {"type": "jwt", "name": "eve"}  # "carol"'s approval

    rows = [
        r for r in audit_rows(runs_of("approvals_by_signal", edit=authenticate)) if r.by in ("bob", "carol")
    ]
    assert [(r.by, r.identity_user, r.principal, r.mismatch) for r in rows] == [
        ("bob", None, {"type": "jwt", "name": "bob@example.com"}, False),
        ("carol", None, {"type": "jwt", "name": "eve"}, True),
    ]
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [(t["principalType"], t["principalName"], t["mismatch"]) for t in table] == [
        ("jwt", "bob@example.com", "false"),
        ("jwt", "eve", "true"),
    ]


def test_csv_has_one_header_and_weights_as_two_columns() -> None:
    rows = audit_rows(runs_of("approvals_by_signal"))
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(table) == len(rows)
    assert table[0]["action"] == "start" and table[0]["step"] == "" and table[0]["stable"] == ""
    assert [(t["step"], t["stable"], t["canary"]) for t in table if t["action"] == "set_weights"][1] == (
        "1",
        "90",
        "10",
    )
    assert {t["mismatch"] for t in table} == {"true", "false"}


@pytest.mark.parametrize(
    ("identity", "user"),
    [
        ("temporal-cli:alice@laptop", "alice"),
        ("sluice:Alice@build-7", "alice"),
        ("alice@laptop", "alice"),
        ("alice", "alice"),
        ("CN=alice,OU=sre,O=example", "alice"),
        ("spiffe-less:CN=bob,O=example", "bob"),
        ("4711@vm", None),
        ("temporal-cli:4711@vm", None),
        ("", None),
    ],
)
def test_identity_names_the_user(identity: str, user: str | None) -> None:
    assert identity_user(identity) == user


def test_a_claim_matches_by_the_user_part_only() -> None:
    assert claimed_user(" Alice@example.com ") == "alice"
    assert not is_mismatch("alice", "temporal-cli:alice@laptop")
    assert not is_mismatch("alice@example.com", "alice@laptop")
    assert is_mismatch("carol", "bob@desk")
    assert is_mismatch("alice", "4711@vm")  # an identity that names nobody backs no claim
    assert not is_mismatch("", "bob@desk")  # nothing claimed


def test_the_table_shows_what_senders_wrote_as_text_never_as_markup() -> None:
    def inject(data: dict[str, Any]) -> None:
        signals = [e for e in data["events"] if "workflowExecutionSignaledEventAttributes" in e]
        attributes = signals[2]["workflowExecutionSignaledEventAttributes"]
        attributes["identity"] = "[green]bob[/green]"
        payload = attributes["input"]["payloads"][0]
        payload["data"] = base64.b64encode(json.dumps({"by": "[dim]bob[/dim]"}).encode()).decode()

    console = Console(record=True, width=300)
    print_audit(console, "rollout", 1, audit_rows(runs_of("approvals_by_signal", edit=inject)))
    text = console.export_text()
    assert "[dim]bob[/dim]" in text and "[green]bob[/green] MISMATCH" in text
