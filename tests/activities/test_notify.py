"""Activity ``notify`` in Temporal's ActivityEnvironment against a real receiver on 127.0.0.1:
the worker's policy decides which secrets it reads and where it sends, and the URL never shows in
an error."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities, redact
from activities.outbound import HostRule, OutboundPolicy
from activities.policy import WorkerPolicy, using_policy
from sluice.stack import WebhookReceiver
from tests.support.notification_shapes import check_cloudevent
from workflows.models import Weights
from workflows.notifications import NotificationMessage, NotifyInput
from workflows.notify_spec import WebhookRef

ENV = "TEST_NOTIFY_HOOK"
ALLOWED = WorkerPolicy(secret_env=("TEST_NOTIFY_*",))


def request(webhook: dict[str, Any] | None = None, format: str = "cloudevents") -> NotifyInput:
    return NotifyInput(
        sink="audit",
        field="notify[1]",
        format=format,
        webhook=WebhookRef.model_validate(webhook or {"urlEnv": ENV}),
        request_timeout_seconds=5,
        message=NotificationMessage(
            id="rollout-x/run/7", event="succeeded", rollout_id="rollout-x", temporal_namespace="default",
            namespace="default", service="reviews", step=7, weights=Weights(stable=0, canary=100),
            phase="Succeeded", reason="rollout complete", at=datetime(2026, 12, 5, tzinfo=UTC),
        ),
    )  # fmt: skip


async def run(policy: WorkerPolicy, payload: NotifyInput, ui_url: str | None = None) -> None:
    with using_policy(policy):
        await ActivityEnvironment().run(NotifyActivities(ui_url).notify, payload)


async def refusal(policy: WorkerPolicy, payload: NotifyInput, secret: str) -> ApplicationError:
    with pytest.raises(ApplicationError) as refused:
        await run(policy, payload)
    assert secret not in str(refused.value) and refused.value.__cause__ is None
    return refused.value


async def test_delivers_a_cloudevent_read_from_the_env_var_the_policy_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with WebhookReceiver() as receiver:
        monkeypatch.setenv(ENV, receiver.url)
        await run(ALLOWED, request(), ui_url="http://ui.example:8233")
        [delivery] = receiver.received()
    assert delivery.path == f"/services/{receiver.secret}" and delivery.status == 200
    check_cloudevent(delivery.body, delivery.headers["content-type"])
    assert delivery.body["data"]["link"] == "http://ui.example:8233/namespaces/default/workflows/rollout-x"


async def test_reads_the_url_from_a_file_under_the_secrets_dir(tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        (tmp_path / "hook").write_text(receiver.url + "\n")
        await run(
            WorkerPolicy(secrets_dirs=(tmp_path,)), request({"urlFile": str(tmp_path / "hook")}, "slack")
        )
        [delivery] = receiver.received()
        assert "blocks" in delivery.body
        outside = await refusal(WorkerPolicy(), request({"urlFile": str(tmp_path / "hook")}), receiver.secret)
    assert outside.type == "NotAllowed" and outside.non_retryable
    assert (
        outside.message.startswith("notify[1].webhook.urlFile: ") and "SLUICE_SECRETS_DIR" in outside.message
    )


async def test_an_env_var_the_policy_does_not_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookReceiver() as receiver:
        monkeypatch.setenv(ENV, receiver.url)
        refused = await refusal(WorkerPolicy(), request(), receiver.secret)
        assert receiver.received() == []
    assert refused.type == "NotAllowed" and refused.non_retryable
    assert (
        refused.message
        == f"notify[1].webhook.urlEnv: the worker may not read {ENV}; list it in SLUICE_SECRET_ENV"
    )
    monkeypatch.delenv(ENV)
    unset = await refusal(ALLOWED, request(), "http")
    assert unset.type == "WebhookMisconfigured" and unset.non_retryable and ENV in unset.message


async def test_the_outbound_policy_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = WorkerPolicy(secret_env=(ENV,), outbound=OutboundPolicy((HostRule.parse("*.example.com"),)))
    with WebhookReceiver() as receiver:
        monkeypatch.setenv(ENV, receiver.url)
        refused = await refusal(policy, request(), receiver.secret)
        assert receiver.received() == []
    assert refused.type == "NotAllowed" and "SLUICE_ALLOWED_HOSTS" in refused.message


@pytest.mark.parametrize(
    ("status", "retried"), [(500, True), (503, True), (429, True), (404, False), (400, False)]
)
async def test_a_non_2xx_answer_raises_without_the_url(
    monkeypatch: pytest.MonkeyPatch, status: int, retried: bool
) -> None:
    with WebhookReceiver(failures=[status]) as receiver:
        monkeypatch.setenv(ENV, receiver.url)
        refused = await refusal(ALLOWED, request(), receiver.secret)
    assert refused.type == "WebhookRejected" and refused.non_retryable is not retried
    assert refused.message.startswith(f"notify[1] (audit): the webhook answered {status}")


async def test_an_unreachable_webhook_is_retried_and_not_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    secret = "services/T1/B2/unreachable-secret-path"
    monkeypatch.setenv(ENV, f"http://127.0.0.1:{port}/{secret}")
    refused = await refusal(ALLOWED, request(), secret)
    assert refused.type == "WebhookUnreachable" and not refused.non_retryable


def test_redact_removes_the_url_and_its_secret_parts() -> None:
    url = "https://hooks.slack.com/services/T000/B000/XYZ?token=abc"
    text = f"POST {url} failed; path /services/T000/B000/XYZ; query token=abc"
    assert redact(text, url) == "POST [webhook URL] failed; path [webhook URL]; query [webhook URL]"
