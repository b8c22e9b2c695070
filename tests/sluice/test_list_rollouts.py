"""``sluice list`` against the dev server ``sluice dev`` runs, with real rollouts in several phases.

The server is the stack's own :class:`~sluice.stack._temporal.TemporalDevServer` (so the search
attributes are registered exactly as ``sluice dev`` registers them), the worker the real one on
the dryRun router. Visibility is eventually consistent: the test polls the list until its rows
settle on what each rollout's ``status`` query says, never sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from sluice.listing import RolloutRow, list_rollouts
from sluice.stack._processes import free_port
from sluice.stack._temporal import TemporalDevServer
from tests.support.binaries import require_binary
from tests.support.rollouts import dry_run_spec, failure_of, wait_for_status
from worker.main import build_worker
from workflows.patches import GENERATION, IMPLIED
from workflows.rollout import Rollout
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES, LISTING_ATTRIBUTES_PATCH

ROOT = Path(__file__).resolve().parents[2]
Handle = WorkflowHandle[Any, Any]
Row = tuple[str | None, str | None, int | None, int | None, str | None, str]
"""service, phase, step, canary weight, waiting for, status"""


@pytest.fixture(scope="module")
async def dev_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TemporalDevServer]:
    require_binary("temporal")
    server = TemporalDevServer(tmp_path_factory.mktemp("list"), free_port(), None).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def server_client(dev_server: TemporalDevServer) -> Client:
    """A client once the frontend is healthy (its port opens a moment before)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return await Client.connect(dev_server.address, data_converter=pydantic_data_converter)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def settled(
    list_once: Callable[[], Any], expected: Callable[[list[RolloutRow]], bool], timeout: float = 30
) -> list[RolloutRow]:
    """Poll the visibility store until ``expected`` holds for what it lists."""
    deadline = time.monotonic() + timeout
    rows: list[RolloutRow] = []
    while time.monotonic() < deadline:
        rows = await list_once()
        if expected(rows):
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"the list never settled within {timeout}s; last: {rows}")


def row_of(row: RolloutRow) -> Row:
    return (row.service, row.phase, row.step, row.canary_weight, row.waiting_for, row.status)


def row_from_status(status: dict[str, Any], execution_status: str) -> Row:
    """What the list must say of a rollout, from its own ``status`` query (the truth)."""
    weights, waiting = status.get("weights"), status.get("waitingFor")
    return (
        status["service"] or None,
        status["phase"],
        status["currentStep"],
        weights["canary"] if weights else None,
        waiting["kind"] if waiting else None,
        execution_status,
    )


async def sluice(*args: str) -> subprocess.CompletedProcess[str]:
    """``sluice`` as a user runs it, its output piped (a thread: the worker shares this loop)."""
    command = [require_binary("sluice"), *args]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )


async def test_sluice_dev_registers_every_search_attribute(server_client: Client) -> None:
    listing = await server_client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    registered = dict(listing.custom_attributes)
    for key in ALL_SEARCH_ATTRIBUTES:
        assert registered.get(key.name) == key.indexed_value_type.value, key.name
    assert registered["SluiceStep"] == IndexedValueType.INDEXED_VALUE_TYPE_INT


async def test_list_shows_rollouts_in_every_phase_with_filters(
    server_client: Client, dev_server: TemporalDevServer
) -> None:
    client, queue, token = server_client, f"list-{uuid.uuid4()}", uuid.uuid4().hex[:6]

    def spec(name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
        return dry_run_spec(steps, service=f"{name}-{token}")

    async def start(name: str, body: dict[str, Any]) -> Handle:
        return await client.start_workflow("Rollout", body, id=f"rollout-{name}-{token}", task_queue=queue)

    async with build_worker(client, queue):
        succeeded = await start("succeeded", spec("succeeded", [{"setWeight": 50}]))
        await succeeded.result()
        rolled_back = await start("rolledback", spec("rolledback", [{"setWeight": 10}, {"approval": {}}]))
        await wait_for_status(rolled_back, lambda s: s["phase"] == "WaitingForApproval")
        await rolled_back.execute_update("abort", {"by": "alice", "reason": "listing test"})
        assert (await failure_of(rolled_back)).type == "RolloutAborted"
        invalid = await start("invalid", spec("invalid", [{"setWeight": 150}]))
        assert (await failure_of(invalid)).type == "InvalidSpec"
        gate = await start("gate", spec("gate", [{"setWeight": 20}, {"approval": {}}, {"setWeight": 100}]))
        await wait_for_status(gate, lambda s: s["phase"] == "WaitingForApproval")

        handles = {"gate": gate, "invalid": invalid, "rolledback": rolled_back, "succeeded": succeeded}
        outcome = {"gate": "running", "invalid": "failed", "rolledback": "failed", "succeeded": "completed"}
        truth = {
            name: row_from_status(await handle.query("status"), outcome[name])
            for name, handle in handles.items()
        }
        assert truth["gate"] == (f"gate-{token}", "WaitingForApproval", 2, 20, "approval", "running")
        assert truth["succeeded"] == (f"succeeded-{token}", "Succeeded", 1, 50, None, "completed")
        assert truth["rolledback"] == (f"rolledback-{token}", "RolledBack", 2, 0, None, "failed")
        assert truth["invalid"] == (f"invalid-{token}", "Failed", 0, None, None, "failed")

        # every rollout, newest first, each row equal to what its status says
        newest_first = [handles[name].id for name in ("gate", "invalid", "rolledback", "succeeded")]
        rows = await settled(
            lambda: list_rollouts(client),
            lambda rows: (
                [r.rollout_id for r in rows] == newest_first
                and all(row_of(r) == truth[r.rollout_id.split("-")[1]] for r in rows)
            ),
        )
        assert [r.started_at for r in rows] == sorted((r.started_at for r in rows), reverse=True)

        # filters
        only = await list_rollouts(client, phase="WaitingForApproval")
        assert [r.rollout_id for r in only] == [gate.id]
        assert [r.rollout_id for r in await list_rollouts(client, phase="failed")] == [invalid.id]
        assert [r.rollout_id for r in await list_rollouts(client, service=f"succeeded-{token}")] == [
            succeeded.id
        ]
        assert [r.rollout_id for r in await list_rollouts(client, running=True)] == [gate.id]
        assert len(await list_rollouts(client, limit=2)) == 2
        assert await list_rollouts(client, service="nobody", running=True) == []

        # the rollout refused for its spec is found by its phase, with Temporal's own query too
        found = [w.id async for w in client.list_workflows('SluicePhase = "Failed"')]
        assert found == [invalid.id]
        waiting = [
            w.id async for w in client.list_workflows("SluiceWaitingFor = 'approval' AND SluiceStep >= 2")
        ]
        assert waiting == [gate.id]
        assert [w.id async for w in client.list_workflows("SluiceCanaryWeight = 0")] == [rolled_back.id]
        not_waiting = {
            w.id async for w in client.list_workflows("WorkflowType = 'Rollout' AND SluiceWaitingFor IS NULL")
        }
        assert not_waiting == {invalid.id, rolled_back.id, succeeded.id}

        # the CLI, piped: one aligned line per rollout, and the same rows as JSON
        address = dev_server.address
        table = await sluice("list", "--address", address)
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split() == [
            "ROLLOUT",
            "SERVICE",
            "PHASE",
            "STEP",
            "CANARY",
            "WAITING",
            "AGE",
            "STATUS",
        ]
        assert [line.split()[0] for line in lines[1:]] == newest_first
        cells = {line.split()[0]: line.split() for line in lines[1:]}
        assert cells[gate.id][1:6] == [f"gate-{token}", "WaitingForApproval", "2", "20%", "approval"]
        assert cells[gate.id][7] == "running"
        assert cells[invalid.id][1:6] == [f"invalid-{token}", "Failed", "0", "-", "-"]
        assert cells[rolled_back.id][2:6] == ["RolledBack", "2", "0%", "-"]
        assert len({line.index("PHASE") if i == 0 else None for i, line in enumerate(lines)} - {None}) == 1
        assert all(len(line) > 80 for line in lines[1:])  # not wrapped at 80 columns when piped
        as_json = await sluice("list", "--running", "--output", "json", "--address", address)
        assert as_json.returncode == 0, as_json.stderr
        (listed,) = json.loads(as_json.stdout)
        assert listed["rolloutId"] == gate.id
        assert {
            k: listed[k] for k in ("service", "phase", "step", "canaryWeight", "waitingFor", "status")
        } == {
            "service": f"gate-{token}",
            "phase": "WaitingForApproval",
            "step": 2,
            "canaryWeight": 20,
            "waitingFor": "approval",
            "status": "running",
        }
        empty = await sluice("list", "--service", "nobody", "--address", address)
        assert (empty.returncode, empty.stdout, empty.stderr.strip()) == (0, "", "no rollouts found")
        bad = await sluice("list", "--phase", "Waiting", "--address", address)
        assert bad.returncode == 2
        assert "error: --phase: unknown phase 'Waiting' (one of Initializing, Progressing," in " ".join(
            bad.stderr.split()
        )

        # the gate passes: the row follows (step, weight and wait change without a query to it)
        await gate.execute_update("approve", {"by": "alice"})
        await gate.result()
        await settled(
            lambda: list_rollouts(client, service=f"gate-{token}"),
            lambda rows: (
                [row_of(r) for r in rows] == [(f"gate-{token}", "Succeeded", 3, 100, None, "completed")]
            ),
        )

    # the new upserts are deterministic: every history replays, and each took the patch (as the
    # generation marker new runs record, which implies it)
    replayer = Replayer(workflows=[Rollout], data_converter=pydantic_data_converter)
    for name, handle in handles.items():
        history = await handle.fetch_history()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{name}: {result.replay_failure!r}"
        patches = [
            json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
            for e in history.events
            if e.marker_recorded_event_attributes.marker_name == "core_patch"
        ]
        assert patches == [GENERATION] and LISTING_ATTRIBUTES_PATCH in IMPLIED, name
        upserts = [
            e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        ]
        assert upserts, name
        # only values that changed are upserted, never one already there
        published: dict[str, bytes] = {}
        for fields in upserts:
            for field, payload in fields.items():
                assert published.get(field) != payload.data, f"{name}: {field} upserted unchanged"
                published[field] = payload.data


async def test_a_rollout_that_continued_as_new_is_one_row_with_its_values() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=require_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=ALL_SEARCH_ATTRIBUTES,  # the --search-attribute flags `sluice dev` passes
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"],
    )
    try:
        client, queue = env.client, f"list-{uuid.uuid4()}"
        spec = dry_run_spec([{"setWeight": 30}, {"approval": {}}])
        async with build_worker(client, queue):
            handle = await client.start_workflow(
                "Rollout", spec, id=f"rollout-can-{uuid.uuid4()}", task_queue=queue
            )
            await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
            for number in range(30):  # refused signals fill the history up to the suggestion
                await handle.signal("approve", {"by": f"mallory-{number}", "step": 9})
            await wait_for_status(handle, lambda s: s["runs"] >= 2 and s["phase"] == "WaitingForApproval")
            runs = [w.run_id async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")]
            assert len(runs) >= 2
            rows = await settled(
                lambda: list_rollouts(client),
                lambda rows: (
                    [row_of(r) for r in rows]
                    == [(spec["service"], "WaitingForApproval", 2, 30, "approval", "running")]
                ),
            )
            assert rows[0].run_id == (await handle.describe()).run_id  # the newest run, not an older one
            await handle.terminate("test done")
    finally:
        await env.shutdown()
