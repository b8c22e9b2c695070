"""sluicegate's metrics as a rollout records them: live once, never again on replay.

A worker on a runtime whose metrics go to a :class:`~temporalio.runtime.MetricBuffer` runs a real
rollout against the dev server; then the same history, and every saved one, is replayed on that
runtime. The SDK documents ``workflow.metric_meter()`` as replay-safe (it checks
``workflow.unsafe.is_replaying()`` before each record); this holds sluicegate to it, so a
rollout taken over by another worker, or replayed after a cache eviction, counts nothing twice.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import MetricBuffer, MetricBufferDurationFormat, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from tests.histories.record import HISTORIES
from tests.support.rollouts import dry_run_spec, failure_of, start_rollout, wait_for_status
from worker.main import build_worker
from workflows.rollout import Rollout
from workflows.rollout_metrics import SLUICE_METRICS, outcome_of

SLUICE_NAMES = {metric.name for metric in SLUICE_METRICS}


def sluice_updates(
    buffer: MetricBuffer,
) -> list[tuple[str, dict[str, str | int | float | bool], int | float]]:
    """Drain ``buffer``: (name, attributes, value) of every update to one of sluicegate's metrics."""
    return [
        (update.metric.name, dict(update.attributes), update.value)
        for update in buffer.retrieve_updates()
        if update.metric.name in SLUICE_NAMES
    ]


def counted(
    updates: list[tuple[str, dict[str, str | int | float | bool], int | float]], name: str
) -> Counter[str]:
    """How often ``name`` was counted, by its labels other than the SDK's."""
    own = ("service", "router", "outcome", "type", "result", "verdict")
    return Counter(
        ",".join(f"{key}={attributes[key]}" for key in own if key in attributes)
        for metric, attributes, value in updates
        if metric == name
        for _ in range(int(value))
    )


def test_outcomes_are_named_after_the_final_phase() -> None:
    assert [outcome_of(p) for p in ("Succeeded", "RolledBack", "Failed")] == [
        "succeeded",
        "rolledBack",
        "failed",
    ]


async def test_a_rollout_records_its_metrics_live_and_nothing_when_replayed(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    buffer = MetricBuffer(100_000, MetricBufferDurationFormat.SECONDS)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    config = dev_env.client.service_client.config
    client = await Client.connect(
        config.target_host,
        namespace=dev_env.client.namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    approved_spec = dry_run_spec([{"setWeight": 20}, {"approval": {}}, {"setWeight": 100}])
    service = approved_spec["service"]
    async with build_worker(client, task_queue):
        approved = await start_rollout(client, task_queue, approved_spec)
        await wait_for_status(approved, lambda s: s["phase"] == "WaitingForApproval")
        await approved.execute_update("approve", {"by": "alice"})
        await approved.result()
        aborted = await start_rollout(client, task_queue, dry_run_spec([{"setWeight": 20}, {"approval": {}}]))
        await wait_for_status(aborted, lambda s: s["phase"] == "WaitingForApproval")
        await aborted.execute_update("abort", {"by": "bob"})
        await failure_of(aborted)
        refused = await start_rollout(client, task_queue, {"service": "reviews", "router": {"kind": "nope"}})
        assert (await failure_of(refused)).type == "InvalidSpec"

    live = sluice_updates(buffer)
    started = counted(live, "sluice_rollouts_started_total")
    assert started[f"service={service},router=dryRun"] == 1
    assert started["service=,router="] == 1  # the refused spec, labels unknown
    assert sum(started.values()) == 3
    finished = counted(live, "sluice_rollouts_finished_total")
    assert finished[f"service={service},router=dryRun,outcome=succeeded"] == 1
    assert finished["service=,router=,outcome=failed"] == 1
    assert sum(1 for key in finished if key.endswith("outcome=rolledBack")) == 1
    rollbacks = counted(live, "sluice_rollbacks_total")
    assert list(rollbacks.values()) == [1] and next(iter(rollbacks)).endswith("type=RolloutAborted")
    waits = [(a, v) for name, a, v in live if name == "sluice_approval_wait_seconds"]
    assert len(waits) == 1  # the approved gate; the aborted one was never released
    assert waits[0][0]["service"] == service and waits[0][0]["workflow_type"] == "Rollout"
    assert float(waits[0][1]) >= 0
    changes = counted(live, "sluice_route_changes_total")
    assert changes[f"service={service},router=dryRun,result=succeeded"] == 3  # 0/100, 20, 100
    assert all(
        a["activity_type"] in ("set_weights", "remove_old_route")
        for n, a, _ in live
        if n.startswith("sluice_route")
    )

    for handle in (approved, aborted, refused):
        history = await handle.fetch_history()
        replayed = await Replayer(
            workflows=[Rollout], data_converter=pydantic_data_converter, runtime=runtime
        ).replay_workflow(history)
        assert replayed.replay_failure is None
    for path in sorted(HISTORIES.glob("*/*.json")):
        saved = WorkflowHistory.from_json(Path(path).stem, path.read_text())
        await Replayer(
            workflows=[Rollout], data_converter=pydantic_data_converter, runtime=runtime
        ).replay_workflow(saved, raise_on_replay_failure=False)
    assert sluice_updates(buffer) == []
