"""The ``notify`` spec section and the rule that maps recorded events to notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workflows.models import EventRecord
from workflows.notifications import notification_events
from workflows.notify_spec import NOTIFY_EVENTS
from workflows.spec import SpecError, validate_spec

SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXX"


def spec_with(*sinks: dict[str, Any]) -> dict[str, Any]:
    return {
        "service": "reviews",
        "router": {"kind": "dryRun"},
        "stable": {"host": "reviews-v1"},
        "canary": {"host": "reviews-v2"},
        "notify": list(sinks),
    }


def sink(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "name": "team-chat",
        "webhook": {"urlEnv": "CHAT_WEBHOOK_URL"},
        "format": "slack",
        "on": ["waitingForApproval", "rolledBack"],
    }
    value.update(changes)
    return value


def problems(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as refused:
        validate_spec(spec)
    return refused.value.problems


def test_a_sink_as_documented() -> None:
    spec = validate_spec(
        spec_with(
            sink(),
            sink(name="audit", webhook={"urlFile": "/etc/sluice/audit-hook"}, format="cloudevents",
                 on=list(NOTIFY_EVENTS), deliveryTimeout="30s"),
        )
    )  # fmt: skip
    chat, audit = spec.notify
    assert chat.webhook.url_env == "CHAT_WEBHOOK_URL" and chat.delivery_timeout == timedelta(minutes=5)
    assert audit.webhook.url_file == "/etc/sluice/audit-hook" and audit.delivery_timeout == timedelta(
        seconds=30
    )
    assert validate_spec(spec_with()).notify == []
    assert validate_spec({k: v for k, v in spec_with().items() if k != "notify"}).notify == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"on": ["rolledback"]}, "notify[0].on: unknown event 'rolledback' (expected one of started, "),
        ({"on": []}, "notify[0].on: needs at least one event"),
        ({"format": "teams"}, "notify[0].format: unknown format; must be one of slack, json, cloudevents"),
        ({"webhook": {}}, "notify[0].webhook: set exactly one of urlEnv"),
        ({"webhook": {"urlEnv": "A", "urlFile": "/b"}}, "notify[0].webhook: set exactly one of urlEnv"),
        ({"webhook": {"urlEnv": "not a name"}}, "notify[0].webhook.urlEnv: must be an environment variable"),
        (
            {"webhook": {"urlFile": "relative/hook"}},
            "notify[0].webhook.urlFile: must be an absolute file path",
        ),
        ({"webhook": {"urlEnv": "X", "headers": {}}}, "notify[0].webhook.headers: unknown key"),
        ({"deliveryTimeout": "0s"}, "notify[0].deliveryTimeout: must be at least 1s"),
        ({"deliveryTimeout": "2h"}, "notify[0].deliveryTimeout: must be at most 1h"),
        ({"name": "Team Chat!"}, "notify[0].name: must be a short name"),
        ({"onn": ["started"]}, "notify[0].onn: unknown key"),
    ],
)
def test_bad_sinks_are_refused_naming_the_field(change: dict[str, Any], expected: str) -> None:
    found = problems(spec_with(sink(**change)))
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    "webhook",
    [
        {"url": SLACK_URL},
        {"urlEnv": SLACK_URL},
        {"urlFile": SLACK_URL},
        {"urlEnv": "hooks.slack.com/services/T000/B000/XXXX"},
        SLACK_URL,
    ],
)
def test_a_url_written_into_the_spec_is_refused_without_quoting_it(webhook: Any) -> None:
    [problem] = problems(spec_with(sink(webhook=webhook)))
    assert problem.startswith("notify[0].webhook: ")
    assert "write the URL into an environment variable or file and name it (urlEnv/urlFile)" in problem
    assert "webhook URLs are secrets and the spec is stored in history" in problem
    assert "XXXX" not in problem  # the refusal (stored in history too) never repeats the secret


def test_duplicate_names_are_refused() -> None:
    found = problems(spec_with(sink(), sink(format="json"), sink(name="other")))
    assert found == ["notify[1].name: duplicate name 'team-chat' (notify[0] has it too)"]


def _record(event: str, **detail: Any) -> EventRecord:
    return EventRecord(at=datetime(2026, 12, 5, tzinfo=UTC), event=event, step=2, detail=detail)


@pytest.mark.parametrize(
    ("event", "detail", "held", "expected"),
    [
        ("rolloutStarted", {}, False, ("started",)),
        ("approvalRequested", {}, False, ("waitingForApproval",)),
        ("paused", {}, False, ("paused",)),
        ("pauseStepReached", {}, False, ("paused",)),
        ("analysisInconclusive", {}, False, ("paused",)),
        ("driftDetected", {}, False, ("driftDetected", "paused")),
        ("resumed", {}, True, ("resumed",)),
        ("promoted", {}, True, ("resumed",)),
        ("promoted", {}, False, ()),  # passing a gate is an approval, not a resume
        ("rollbackStarted", {"type": "AnalysisFailed"}, False, ("analysisFailed",)),
        ("rollbackStarted", {"type": "RolloutAborted"}, False, ()),
        ("rolloutEnded", {"phase": "Succeeded"}, False, ("succeeded",)),
        ("rolloutEnded", {"phase": "RolledBack"}, False, ("rolledBack",)),
        ("rolloutEnded", {"phase": "Failed"}, False, ("failed",)),
        ("weightsSet", {}, False, ()),
        ("notificationFailed", {}, False, ()),  # never a notification about a notification
    ],
)
def test_recorded_events_map_to_notifications(
    event: str, detail: dict[str, Any], held: bool, expected: tuple[str, ...]
) -> None:
    assert notification_events(_record(event, **detail), held) == expected
    assert set(expected) <= set(NOTIFY_EVENTS)
