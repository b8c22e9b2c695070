"""Notifications on a real Temporal dev server, delivered to real receivers on 127.0.0.1.

The rollouts run the real activities with the dryRun router; the worker's policy allows the test's
webhook env var and secrets directory. Delivery is at least once: a failed POST is retried with the
same event id until it is accepted, and the rollout never waits for it (only the end of the run
drains what is still out).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shlex
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.policy import WorkerPolicy
from sluice.stack import Delivery, WebhookReceiver
from tests.support.binaries import require_binary
from tests.support.notification_shapes import check_cloudevent, check_slack
from tests.support.rollouts import dry_run_spec, failure_of, start_rollout, wait_for_status
from worker.main import build_worker

HOOK_ENV = "SLUICE_TEST_HOOK_URL"
UI = "http://localhost:8233"


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
async def worker(client: Client, task_queue: str, secrets_dir: Path) -> AsyncIterator[Worker]:
    policy = WorkerPolicy(secret_env=("SLUICE_TEST_HOOK_*",), secrets_dirs=(secrets_dir,))
    async with build_worker(client, task_queue, policy, ui_url=UI) as running:
        yield running


def sink(name: str, format: str, on: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "webhook": {"urlEnv": HOOK_ENV}, "format": format, "on": on, **extra}


async def until(receiver: WebhookReceiver, predicate: Callable[[list[Delivery]], bool]) -> list[Delivery]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        received = receiver.received()
        if predicate(received):
            return received
        await asyncio.sleep(0.05)
    raise AssertionError(f"the receiver never got what was expected; got {receiver.received()}")


def _decoded(node: Any) -> Iterator[str]:
    """Every string in the history, payload data base64-decoded (as the history stores it)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "data" and isinstance(value, str):
                yield base64.b64decode(value).decode(errors="replace")
            else:
                yield from _decoded(value)
    elif isinstance(node, list):
        for item in node:
            yield from _decoded(item)
    elif isinstance(node, str):
        yield node


async def history_json(handle: WorkflowHandle[Any, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The history as searchable text (payloads decoded) and its events."""
    events = json.loads((await handle.fetch_history()).to_json())["events"]
    return "\n".join(_decoded(events)), events


def event_type(event: dict[str, Any]) -> str:
    return str(event["eventType"])


async def test_a_receiver_failing_three_times_gets_each_event_once_and_the_commands_work(
    client: Client,
    dev_env: WorkflowEnvironment,
    task_queue: str,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    on = ["started", "waitingForApproval", "succeeded"]
    spec = dry_run_spec(
        [{"setWeight": 50}, {"approval": {}}, {"setWeight": 100}],
        notify=[sink("audit", "cloudevents", on, deliveryTimeout="2m")],
    )
    with WebhookReceiver(failures=[500, 503, 429]) as receiver:
        monkeypatch.setenv(HOOK_ENV, receiver.url)
        handle = await start_rollout(client, task_queue, spec)
        received = await until(
            receiver, lambda got: any(d.status == 200 and "waitingForApproval" in d.body["type"] for d in got)
        )
        gate = next(d for d in received if d.status == 200 and d.body["type"].endswith("waitingForApproval"))
        # The command the notification gives, run as a person would (with the test server's address).
        approve = next(c for c in gate.body["data"]["commands"] if c["action"] == "approve")["temporal"]
        words = shlex.split(approve.replace("YOUR_NAME", "alice"))
        address = dev_env.client.service_client.config.target_host
        # not subprocess.run: the worker runs on this event loop and must answer the update meanwhile
        process = await asyncio.create_subprocess_exec(
            require_binary("temporal"), *words[1:], "--address", address,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, err.decode()
        summary = await handle.result()
        deliveries = receiver.received()

    assert summary["phase"] == "Succeeded" and summary["approvals"][0]["by"] == "alice"
    accepted = [d for d in deliveries if d.status == 200]
    # at least once, and here exactly once per event: each retry carries the event's id
    assert sorted(d.body["type"] for d in accepted) == sorted(f"io.sluicegate.rollout.{e}" for e in on)
    assert len({d.body["id"] for d in accepted}) == len(on)
    failed = [d for d in deliveries if d.status != 200]
    assert [d.status for d in failed] == [500, 503, 429]
    assert {d.body["id"] for d in failed} <= {d.body["id"] for d in accepted}
    for delivery in accepted:
        check_cloudevent(delivery.body, delivery.headers["content-type"])
        assert delivery.path == f"/services/{receiver.secret}"
        assert delivery.body["data"]["link"] == f"{UI}/namespaces/default/workflows/{handle.id}"
    assert gate.body["data"]["step"] == 2 and gate.body["data"]["weights"] == {"stable": 50, "canary": 50}
    assert not any(e["event"] == "notificationFailed" for e in summary["events"])

    text, _ = await history_json(handle)
    assert receiver.secret not in text and f"127.0.0.1:{receiver.port}" not in text
    # nor in the worker's logs, failed attempts included (httpx's request log is never written)
    assert "WebhookRejected" in caplog.text and receiver.secret not in caplog.text
    assert HOOK_ENV in text  # the spec names the variable; the URL stays on the worker


async def test_a_hanging_receiver_does_not_delay_the_rollout(
    client: Client, task_queue: str, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = dry_run_spec(
        [{"setWeight": 10}, {"setWeight": 100}],
        notify=[sink("chat", "slack", ["started", "succeeded"], deliveryTimeout="8s")],
    )
    with WebhookReceiver(hang=True) as receiver:
        monkeypatch.setenv(HOOK_ENV, receiver.url)
        handle = await start_rollout(client, task_queue, spec)
        summary = await handle.result()  # the end drains: both deliveries give up after 8s
        _, events = await history_json(handle)
        hung = receiver.received()

    assert summary["phase"] == "Succeeded"
    assert any(d.body["blocks"][0]["text"]["text"].endswith("rollout started") for d in hung)
    failures = [e["detail"] for e in summary["events"] if e["event"] == "notificationFailed"]
    assert sorted(f["notification"] for f in failures) == ["started", "succeeded"]
    # given up at the sink's deliveryTimeout: by Temporal, or by the last attempt's own request timeout
    assert all(f["type"] in ("ActivityTimedOut", "WebhookUnreachable") for f in failures), failures
    assert all(f["sink"] == "chat" and receiver.secret not in f["reason"] for f in failures), failures

    # Ordering in the history: the rollout set 100% canary after the `started` delivery was
    # scheduled and before that delivery gave up.
    def scheduled(name: str) -> list[int]:
        return [
            int(e["eventId"]) for e in events
            if event_type(e) == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
            and e["activityTaskScheduledEventAttributes"]["activityType"]["name"] == name
        ]  # fmt: skip

    started_delivery = scheduled("notify")[0]
    gave_up = next(
        int(e["eventId"]) for e in events
        if event_type(e) == "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT"
        and int(e["activityTaskTimedOutEventAttributes"]["scheduledEventId"]) == started_delivery
    )  # fmt: skip
    last_shift = scheduled("set_weights")[-1]
    assert started_delivery < last_shift < gave_up


async def test_slack_messages_through_a_file_url_for_a_person_and_the_end(
    client: Client, task_queue: str, worker: Worker, secrets_dir: Path
) -> None:
    on = ["waitingForApproval", "paused", "resumed", "rolledBack", "succeeded"]
    with WebhookReceiver() as receiver:
        (secrets_dir / "chat-hook").write_text(receiver.url)
        chat = {
            "name": "chat",
            "webhook": {"urlFile": str(secrets_dir / "chat-hook")},
            "format": "slack",
            "on": on,
        }
        spec = dry_run_spec([{"setWeight": 10}, {"approval": {}}, {"setWeight": 100}], notify=[chat])
        handle = await start_rollout(client, task_queue, spec)
        await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
        await handle.execute_update("pause", {"by": "bob", "reason": "checking dashboards"})
        await handle.execute_update("resume", {"by": "bob"})
        await handle.execute_update("abort", {"by": "carol", "reason": "error budget"})
        error = await failure_of(handle)
        deliveries = receiver.received()
        text, _ = await history_json(handle)

    assert error.type == "RolloutAborted"
    assert receiver.secret not in text and str(secrets_dir / "chat-hook") in text
    bodies = {d.body["blocks"][0]["text"]["text"].split(": ")[-1]: d.body for d in deliveries}
    assert all(d.status == 200 and d.headers["content-type"] == "application/json" for d in deliveries)
    assert set(bodies) == {
        "waiting for approval at step 2",
        "paused at step 2",
        "resumed at step 2",
        "rolled back",
    }
    for body in bodies.values():
        check_slack(body)
    gate = json.dumps(bodies["waiting for approval at step 2"])
    assert f"sluice approve {handle.id} --step 2 --by YOUR_NAME --namespace default" in gate
    assert f"--workflow-id {handle.id} --name approve" in gate
    assert f"<{UI}/namespaces/default/workflows/{handle.id}|Open in Temporal UI>" in gate
    paused = json.dumps(bodies["paused at step 2"])
    assert "checking dashboards" in paused and "sluice resume" in paused
    assert "error budget" in bodies["rolled back"]["text"]


@pytest.mark.parametrize(
    ("webhook", "on", "expected"),
    [
        (
            "url",
            ["started"],
            "notify[0].webhook: write the URL into an environment variable or file and name it "
            "(urlEnv/urlFile); webhook URLs are secrets and the spec is stored in history",
        ),
        ("env", ["started", "rolledback"], "notify[0].on: unknown event 'rolledback'"),
    ],
)
async def test_bad_notify_is_refused_at_start_touching_nothing(
    client: Client, task_queue: str, worker: Worker, webhook: str, on: list[str], expected: str
) -> None:
    with WebhookReceiver() as receiver:
        hook = {"url": receiver.url} if webhook == "url" else {"urlEnv": HOOK_ENV}
        spec = dry_run_spec(notify=[{"name": "chat", "webhook": hook, "format": "json", "on": on}])
        handle = await start_rollout(client, task_queue, spec)
        error = await failure_of(handle)
        _, events = await history_json(handle)
        assert receiver.received() == []
    assert error.type == "InvalidSpec" and expected in error.message
    assert receiver.secret not in error.message
    assert not any(event_type(e) == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" for e in events)


async def test_a_delivery_out_when_the_rollout_continues_as_new_is_drained_not_lost(
    small_history_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = small_history_env.client
    queue = f"test-{uuid.uuid4()}"
    on = ["waitingForApproval", "succeeded"]
    spec = dry_run_spec(
        [{"setWeight": 10}, {"approval": {}}, {"setWeight": 100}],
        notify=[sink("audit", "json", on, deliveryTimeout="1m")],
    )
    policy = WorkerPolicy(secret_env=(HOOK_ENV,))
    # The gate's message is refused three times (1 + 2 + 4 s of backoff) while the run fills up.
    with WebhookReceiver(failures=[500, 500, 500]) as receiver:
        monkeypatch.setenv(HOOK_ENV, receiver.url)
        async with build_worker(client, queue, policy):
            handle = await start_rollout(client, queue, spec)
            await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
            for number in range(30):
                await handle.signal("approve", {"by": f"mallory-{number}", "step": 9})
            await wait_for_status(handle, lambda s: s["runs"] >= 2 and s["phase"] == "WaitingForApproval")
            await handle.execute_update("approve", {"by": "alice", "step": 2})
            summary = await handle.result()
        accepted = receiver.accepted()

    assert summary["phase"] == "Succeeded" and summary["runs"] >= 2
    # one message per event: the gate is not announced again by the next run, nor lost by the first
    assert sorted(d.body["event"] for d in accepted) == sorted(on)
    assert len({d.body["id"] for d in accepted}) == len(on)
    assert not any(e["event"] == "notificationFailed" for e in summary["events"])
