"""The notification formats: pure functions from a message to a documented payload."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from typing import Any

import pytest

from activities.notifiers import FORMATS, commands_for, render, ui_link
from tests.support.notification_shapes import check_cloudevent, check_slack
from workflows.models import Weights
from workflows.notifications import NotificationMessage
from workflows.notify_spec import NOTIFY_EVENTS

AT = datetime(2026, 12, 5, 4, 30, tzinfo=UTC)
LINK = "http://localhost:8233/namespaces/default/workflows/rollout-default-reviews"


def message(event: str = "waitingForApproval", **changes: Any) -> NotificationMessage:
    fields: dict[str, Any] = {
        "id": "rollout-default-reviews/0c6f/12",
        "event": event,
        "rollout_id": "rollout-default-reviews",
        "temporal_namespace": "default",
        "namespace": "default",
        "service": "reviews",
        "step": 2,
        "step_description": "approval",
        "weights": Weights(stable=90, canary=10),
        "phase": "WaitingForApproval",
        "reason": "step 2 waits for approval",
        "at": AT,
    }
    fields.update(changes)
    return NotificationMessage(**fields)


def test_the_ui_link_comes_from_the_worker_setting() -> None:
    assert ui_link("http://localhost:8233/", message()) == LINK
    assert ui_link(None, message()) is None
    odd = message(rollout_id="rollout x/y", temporal_namespace="team a")
    assert ui_link("https://ui", odd) == "https://ui/namespaces/team%20a/workflows/rollout%20x%2Fy"


def test_commands_for_a_gate_approve_that_step_exactly() -> None:
    approve, abort = commands_for(message())
    assert approve.action == "approve" and abort.action == "abort"
    assert approve.temporal == (
        "temporal workflow update execute --namespace default --workflow-id rollout-default-reviews "
        """--name approve --input '{"by": "YOUR_NAME", "step": 2}'"""
    )
    assert (
        approve.sluice == "sluice approve rollout-default-reviews --step 2 --by YOUR_NAME --namespace default"
    )
    words = shlex.split(approve.temporal)
    assert json.loads(words[words.index("--input") + 1]) == {"by": "YOUR_NAME", "step": 2}


@pytest.mark.parametrize("event", ["paused", "driftDetected"])
def test_commands_for_a_hold_resume_or_abort(event: str) -> None:
    assert [c.action for c in commands_for(message(event))] == ["resume", "abort"]
    assert "--name resume" in commands_for(message(event))[0].temporal


@pytest.mark.parametrize(
    "event", ["started", "resumed", "succeeded", "rolledBack", "failed", "analysisFailed"]
)
def test_no_commands_when_no_person_is_needed(event: str) -> None:
    assert commands_for(message(event)) == []


@pytest.mark.parametrize("event", NOTIFY_EVENTS)
def test_slack_payloads_have_the_incoming_webhook_shape(event: str) -> None:
    rendered = render("slack", message(event), LINK)
    assert rendered.content_type == "application/json"
    check_slack(rendered.body)
    text = json.dumps(rendered.body)
    assert "rollout-default-reviews" in rendered.body["text"] and "90% stable / 10% canary" in text
    assert f"<{LINK}|Open in Temporal UI>" in text
    assert ("sluice approve" in text) == (event == "waitingForApproval")


def test_slack_escapes_and_cuts_what_users_wrote() -> None:
    reason = "a < b && c > d " + "x" * 5000
    body = render("slack", message(reason=reason, step_description="<b>"), None).body
    check_slack(body)
    assert "Temporal UI" not in json.dumps(body)  # no link without SLUICE_UI_URL


@pytest.mark.parametrize("event", NOTIFY_EVENTS)
def test_cloudevents_are_structured_cloudevents_1_0(event: str) -> None:
    rendered = render("cloudevents", message(event), LINK)
    check_cloudevent(rendered.body, rendered.content_type)
    body = rendered.body
    assert body["type"] == f"io.sluicegate.rollout.{event}"
    assert body["id"] == "rollout-default-reviews/0c6f/12"
    assert body["source"] == "/sluicegate/namespaces/default/rollouts/rollout-default-reviews"
    assert body["time"] == "2026-12-05T04:30:00Z" and body["subject"] == "rollout-default-reviews"
    assert body["datacontenttype"] == "application/json"
    data = body["data"]
    assert data["event"] == event and data["rolloutId"] == "rollout-default-reviews"
    assert data["weights"] == {"stable": 90, "canary": 10} and data["link"] == LINK


def test_json_is_flat_with_everything_a_script_needs() -> None:
    body = render("json", message(), LINK).body
    assert body["event"] == "waitingForApproval" and body["id"] == "rollout-default-reviews/0c6f/12"
    assert {k: body[k] for k in ("service", "step", "phase", "reason")} == {
        "service": "reviews", "step": 2, "phase": "WaitingForApproval", "reason": "step 2 waits for approval",
    }  # fmt: skip
    assert [c["action"] for c in body["commands"]] == ["approve", "abort"]
    assert "link" not in render("json", message(), None).body
    assert render("json", message(weights=None), None).body["weights"] is None


def test_every_format_is_registered() -> None:
    from workflows.notify_spec import NOTIFY_FORMATS

    assert set(FORMATS) == set(NOTIFY_FORMATS)
