"""Bad inputs on a real dev server: every shape the workflow can be started with ends in a typed
failure within a second, and message payloads are refused by name, never coerced or dropped.

The starts send raw payloads (``RawValue``) where the Python client would refuse to build them,
and the plain ``temporal`` CLI for the shapes people type by hand.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.testing import WorkflowEnvironment

from tests.support.binaries import require_binary
from tests.support.e2e import TemporalCli
from tests.support.rollouts import dry_run_spec, failure_of, wait_for_status
from worker.main import build_worker

# What "fails at once" means here: the start's first workflow task fails the workflow. A workflow
# task that fails instead is retried after a back-off of seconds, so this bound tells them apart.
FAIL_WITHIN_SECONDS = 1.0


@pytest.fixture(scope="module")
async def queue(dev_env: WorkflowEnvironment) -> AsyncIterator[str]:
    """One worker for the module (starting one per case would dominate the time measured)."""
    name = f"inputs-{uuid.uuid4()}"
    async with build_worker(dev_env.client, name):
        # Warm the worker's sandbox, so the first case measures the workflow and not an import.
        handle = await dev_env.client.start_workflow(
            "Rollout", {"service": "warm-up"}, id=f"warm-{uuid.uuid4()}", task_queue=name
        )
        await failure_of(handle)
        yield name


def raw(data: str | bytes, encoding: str = "json/plain") -> RawValue:
    """A payload exactly as given: what another SDK, the CLI or a hand-made request can send."""
    body = data.encode() if isinstance(data, str) else data
    return RawValue(Payload(metadata={"encoding": encoding.encode()}, data=body))


def spec_text(replace: dict[str, str] | None = None, **changes: Any) -> str:
    """A dry-run spec as JSON text; ``replace`` swaps marker strings for literal JSON (``1e400``)."""
    text = json.dumps(dry_run_spec(**changes))
    for marker, literal in (replace or {}).items():
        text = text.replace(json.dumps(marker), literal)
    return text


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


ANALYSIS = {
    "metrics": [{"name": "errors", "prometheus": {"address": "http://127.0.0.1:9", "query": "up"}, "max": 1}]
}
VERIFY = {"url": "http://127.0.0.1:9/", "header": "x-version"}

# (id, the start's arguments, expected failure type, what its message must name)
BAD_STARTS: list[tuple[str, list[Any], str, str]] = [
    ("setWeight-null", [spec_text(steps=[{"setWeight": None}])], "InvalidSpec", "steps[0].setWeight"),
    (
        "approval-null",
        [spec_text(steps=[{"setWeight": 10}, {"approval": None}])],
        "InvalidSpec",
        "steps[1].approval",
    ),
    (
        "removeOld-null",
        [spec_text(steps=[{"setWeight": 100}, {"removeOld": None}])],
        "InvalidSpec",
        "steps[1].removeOld",
    ),
    (
        "approval.timeout-1e300",
        [spec_text(steps=[{"setWeight": 10}, {"approval": {"timeout": 1e300}}])],
        "InvalidSpec",
        "steps[1].approval.timeout: must be at most 3650d",
    ),
    (
        "approval.timeout-beyond-the-calendar",
        [spec_text(steps=[{"setWeight": 10}, {"approval": {"timeout": "999999999d"}}])],
        "InvalidSpec",
        "steps[1].approval.timeout: must be at most 3650d",
    ),
    (
        "pause.duration-1e400",
        [spec_text({"@big": "1e400"}, steps=[{"setWeight": 10}, {"pause": {"duration": "@big"}}])],
        "InvalidSpec",
        "steps[1].pause.duration",
    ),
    (
        "pause.duration-iso-beyond-the-calendar",
        [spec_text(steps=[{"setWeight": 10}, {"pause": {"duration": "P99999999D"}}])],
        "InvalidSpec",
        "steps[1].pause.duration: must be at most 3650d",
    ),
    (
        "removeOld.delay-10^20s",
        [
            spec_text(
                {"@big": "100000000000000000000"},
                steps=[{"setWeight": 100}, {"removeOld": {"delay": "@big"}}],
            )
        ],
        "InvalidSpec",
        "steps[1].removeOld.delay: must be at most 3650d",
    ),
    (
        "removeOld.delay-10^400",
        [
            spec_text(
                {"@big": "1" + "0" * 400},
                steps=[{"setWeight": 100}, {"removeOld": {"delay": "@big"}}],
            )
        ],
        "InvalidSpec",
        "steps[1].removeOld.delay",
    ),
    (
        "verify.requestTimeout-1e300",
        [spec_text(verify={**VERIFY, "requestTimeout": 1e300})],
        "InvalidSpec",
        "verify.requestTimeout: must be at most",
    ),
    (
        "verify.requestTimeout-3650d",
        [spec_text(verify={**VERIFY, "requestTimeout": "3650d"})],
        "InvalidSpec",
        "verify.requestTimeout: must be at most 1h",
    ),
    (
        "analysis.interval-1e300",
        [spec_text(analysis={**ANALYSIS, "interval": 1e300})],
        "InvalidSpec",
        "analysis.interval: must be at most 3650d",
    ),
    (
        "analysis.interval-NaN",
        [spec_text({"@nan": "NaN"}, analysis={**ANALYSIS, "interval": "@nan"})],
        "InvalidSpec",
        "analysis.interval",
    ),
    ("nested-300-in-a-field", [spec_text({"@deep": nested(300)}, service="@deep")], "InvalidSpec", "service"),
    (
        "nested-300-in-an-extra-key",
        [spec_text({"@deep": nested(300)}, extra="@deep")],
        "InvalidSpec",
        "extra",
    ),
    ("nested-5000", [spec_text({"@deep": nested(5000)}, extra="@deep")], "InvalidSpec", "spec:"),
    ("nested-100000", [nested(100_000)], "InvalidSpec", "spec:"),
    ("not-json", [raw(b"{\xff not json")], "InvalidSpec", "spec:"),
    (
        "unknown-encoding",
        [raw(json.dumps(dry_run_spec()), encoding="binary/sluice-unknown")],
        "InvalidSpec",
        "spec: unknown payload encoding 'binary/sluice-unknown'",
    ),
    ("carried-a-string", [spec_text(), json.dumps("garbage")], "InvalidArguments", "carried"),
    ("carried-empty", [spec_text(), "{}"], "InvalidArguments", "carried.status: required"),
    ("carried-a-list", [spec_text(), "[1, 2]"], "InvalidArguments", "carried"),
    (
        "carried-of-another-plan",
        [spec_text(), json.dumps({"status": {"rolloutId": "r", "service": "s", "namespace": "n"}})],
        "InvalidArguments",
        "carried.status.steps: must be the spec's plan",
    ),
    ("three-arguments", [spec_text(), "null", "{}"], "InvalidArguments", "arguments: Rollout takes"),
    ("no-arguments", [], "InvalidArguments", "arguments: Rollout takes"),
]


@pytest.mark.parametrize(
    ("args", "error_type", "names"),
    [pytest.param(args, error_type, names, id=case) for case, args, error_type, names in BAD_STARTS],
)
async def test_bad_start_fails_typed_within_a_second(
    client: Client, queue: str, args: list[Any], error_type: str, names: str
) -> None:
    payloads = [arg if isinstance(arg, RawValue) else raw(arg) for arg in args]
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        "Rollout", args=payloads, id=f"bad-{uuid.uuid4()}", task_queue=queue
    )
    started = time.monotonic()
    try:
        error = await asyncio.wait_for(failure_of(handle), FAIL_WITHIN_SECONDS)
    except TimeoutError:
        await handle.terminate("test: still running")
        raise AssertionError(f"still Running after {FAIL_WITHIN_SECONDS}s") from None
    assert time.monotonic() - started < FAIL_WITHIN_SECONDS
    assert error.type == error_type, error
    assert error.non_retryable
    assert names in error.message, error.message


def test_every_case_of_the_issue_is_listed() -> None:
    named = " ".join(case for case, *_ in BAD_STARTS)
    for kind in ("setWeight-null", "approval-null", "removeOld-null", "unknown-encoding", "three-arguments"):
        assert kind in named
    for field in ("approval.timeout", "pause.duration", "removeOld.delay", "verify.requestTimeout"):
        assert field in named
    assert "analysis.interval" in named and "nested-300" in named and "carried-a-string" in named


@pytest.fixture(scope="module")
def cli(dev_env: WorkflowEnvironment) -> TemporalCli:
    return TemporalCli(require_binary("temporal"), dev_env.client.service_client.config.target_host)


@pytest.mark.parametrize(
    ("extra", "error_type", "names"),
    [
        pytest.param(["--input", '"garbage"'], "InvalidArguments", "carried", id="second-argument-a-string"),
        pytest.param(["--input", "{}"], "InvalidArguments", "carried.status: required", id="second-empty"),
        pytest.param(["--input", "null", "--input", "1"], "InvalidArguments", "arguments", id="three"),
        pytest.param(
            ["--input-meta", "encoding=binary/sluice-unknown"],
            "InvalidSpec",
            "spec: unknown payload encoding",
            id="unknown-encoding",
        ),
    ],
)
async def test_bad_start_from_the_cli_fails_typed(
    client: Client, queue: str, cli: TemporalCli, extra: list[str], error_type: str, names: str
) -> None:
    workflow_id = f"bad-cli-{uuid.uuid4()}"
    spec = json.dumps(dry_run_spec())
    cli.run(
        "workflow", "start", "--type", "Rollout", "--task-queue", queue, "--workflow-id", workflow_id,
        "--input", spec, *extra,
    )  # fmt: skip
    error = await asyncio.wait_for(failure_of(client.get_workflow_handle(workflow_id)), 10)
    assert error.type == error_type and names in error.message, error


async def task_failures(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [
        event.workflow_task_failed_event_attributes.failure.message
        async for event in handle.fetch_history_events()
        if event.HasField("workflow_task_failed_event_attributes")
    ]


async def test_durations_at_their_limits_run_with_healthy_workflow_tasks(client: Client, queue: str) -> None:
    # The longest durations the spec allows become timers, deadlines and activity timeouts that
    # Temporal and datetime arithmetic represent: the workflow waits, it does not fail its tasks.
    spec = dry_run_spec(
        [
            {"setWeight": 10},
            {"approval": {"timeout": "3650d"}},
            {"pause": {"duration": "3650d"}},
            {"setWeight": 100},
            {"removeOld": {"delay": "3650d"}},
        ],
        analysis={**ANALYSIS, "interval": "3650d", "bake": "0s"},
    )
    handle = await client.start_workflow("Rollout", spec, id=f"limits-{uuid.uuid4()}", task_queue=queue)
    status = await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
    until = datetime.fromisoformat(status["waitingFor"]["until"].replace("Z", "+00:00"))
    assert until - datetime.now(UTC) > timedelta(days=3649)
    await handle.execute_update("promote", {"by": "alice"})
    await wait_for_status(handle, lambda s: s["phase"] == "Baking")
    assert await task_failures(handle) == []
    await handle.terminate("test done")

    spec = dry_run_spec(
        [{"setWeight": 10}],
        verify={**VERIFY, "requestTimeout": "1h", "samples": 100_000, "concurrency": 1},
    )
    handle = await client.start_workflow("Rollout", spec, id=f"limits-{uuid.uuid4()}", task_queue=queue)
    await wait_for_status(handle, lambda s: s["phase"] == "Verifying")
    scheduled = [
        event.activity_task_scheduled_event_attributes
        async for event in handle.fetch_history_events()
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    sampling = [a for a in scheduled if a.activity_type.name == "sample_traffic"]
    assert sampling and sampling[0].start_to_close_timeout.ToTimedelta().days > 365 * 10
    assert await task_failures(handle) == []
    await handle.terminate("test done")


async def test_a_workflow_type_the_worker_does_not_host_is_left_to_a_worker_that_does(
    client: Client, queue: str
) -> None:
    # Rollout takes its arguments raw as the worker's dynamic workflow; other types must still fail
    # only the workflow task, as for any unregistered type, never the workflow another worker hosts.
    handle = await client.start_workflow("Rolout", {}, id=f"other-{uuid.uuid4()}", task_queue=queue)
    deadline = time.monotonic() + 10
    failures: list[str] = []
    while not failures and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        async for event in handle.fetch_history_events():
            if event.HasField("workflow_task_failed_event_attributes"):
                failures.append(event.workflow_task_failed_event_attributes.failure.message)
    assert failures and "workflow type 'Rolout' is not registered on this worker" in failures[0]
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    await handle.terminate("test done")


# -- messages -------------------------------------------------------------------------------


async def at_gate(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await client.start_workflow(
        "Rollout",
        dry_run_spec([{"setWeight": 10}, {"approval": {}}, {"setWeight": 100}]),
        id=f"msg-{uuid.uuid4()}",
        task_queue=queue,
    )
    await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
    return handle


def refused_signals(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in status["events"] if e["event"] == "signalRefused"]


@pytest.mark.parametrize(
    ("name", "payload", "names"),
    [
        ("approve", {"by": "al", "step": "2"}, "step: Input should be a valid integer, got '2'"),
        ("approve", {"by": "al", "step": 2.0}, "step: Input should be a valid integer, got 2.0"),
        ("approve", {"by": "al", "step": True}, "step: Input should be a valid integer, got True"),
        ("promote", {"by": "al", "full": "true"}, "full: Input should be a valid boolean, got 'true'"),
        ("approve", {"by": 7}, "by: Input should be a valid string, got 7"),
    ],
)  # fmt: skip
async def test_update_payloads_are_strict(
    client: Client, queue: str, name: str, payload: dict[str, Any], names: str
) -> None:
    handle = await at_gate(client, queue)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(name, payload)
    assert f"{name}: {names}" in str(refused.value.cause)
    status = await handle.query("status")
    assert status["phase"] == "WaitingForApproval" and status["approvals"] == []
    await handle.terminate("test done")


async def test_signal_payloads_are_strict_and_refusals_recorded(client: Client, queue: str) -> None:
    handle = await at_gate(client, queue)
    await handle.signal("approve", {"by": "alice", "step": "2"})
    await handle.signal("promote", {"by": "bob", "full": "true"})
    status = await wait_for_status(handle, lambda s: len(refused_signals(s)) == 2)
    first, second = refused_signals(status)
    assert first["by"] == "alice" and first["detail"]["signal"] == "approve"
    assert "step: Input should be a valid integer, got '2'" in first["detail"]["reason"]
    assert second["by"] == "bob" and "full: Input should be a valid boolean" in second["detail"]["reason"]
    assert status["phase"] == "WaitingForApproval" and status["approvals"] == []
    await handle.signal("approve", {"by": "carol", "step": 2})
    summary = await handle.result()
    assert [(a["by"], a["step"]) for a in summary["approvals"]] == [("carol", 2)]


async def test_unknown_signal_is_recorded_as_refused(client: Client, queue: str) -> None:
    handle = await at_gate(client, queue)
    await handle.signal("aprove", {"by": "alice"})
    await handle.signal("x" * 500, "not even an object")
    status = await wait_for_status(handle, lambda s: len(refused_signals(s)) == 2)
    typo, long_name = refused_signals(status)
    assert typo["by"] == "alice" and typo["detail"]["signal"] == "aprove"
    assert typo["detail"]["reason"] == (
        "unknown signal 'aprove' (known: abort, approve, pause, promote, resume)"
    )
    assert long_name["by"] == "" and len(long_name["detail"]["signal"]) <= 100
    assert status["phase"] == "WaitingForApproval" and status["approvals"] == []
    await handle.signal("approve", {"by": "carol"})
    assert (await handle.result())["phase"] == "Succeeded"
