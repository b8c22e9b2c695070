"""``sluice status`` (``--watch``, by service, JSON) and the action verbs as a user runs them: the
real ``sluice`` executable in a subprocess (``--watch`` on a pseudo-terminal) against a real
Temporal dev server, with a worker in this process driving rollouts on the dryRun router.

The worker runs on this test's event loop, so every subprocess is awaited without blocking it."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import struct
import subprocess
import termios
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.support.binaries import require_binary
from tests.support.rollouts import dry_run_spec, failure_of, start_rollout, wait_for_status
from worker.main import build_worker

ROOT = Path(__file__).resolve().parents[2]
TWO_GATES: list[dict[str, Any]] = [{"setWeight": 50}, {"approval": {}}, {"setWeight": 100}, {"approval": {}}]


@pytest.fixture
def address(dev_env: WorkflowEnvironment) -> str:
    return dev_env.client.service_client.config.target_host


@pytest.fixture
async def worker(client: Client, task_queue: str) -> AsyncIterator[Worker]:
    async with build_worker(client, task_queue) as running:
        yield running


def waiting_at(step: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s["phase"] == "WaitingForApproval" and (s.get("waitingFor") or {}).get("step") == step


async def sluice(*args: str) -> subprocess.CompletedProcess[str]:
    """``sluice ARGS`` with stdout and stderr piped (not a terminal), in a thread."""
    command = [require_binary("sluice"), *args]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The whole of stderr, which must be one line starting with ``error:``, exit 2."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr and "ValueError" not in done.stderr
    return done.stderr.strip()


class Terminal:
    """``sluice ARGS`` on a pseudo-terminal of 160x60, its output collected by a thread."""

    def __init__(self, *args: str) -> None:
        self.master, replica = os.openpty()
        fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 160, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color"}
        env.pop("COLUMNS", None)
        self.process = subprocess.Popen(
            [require_binary("sluice"), *args],
            stdin=replica,
            stdout=replica,
            stderr=replica,
            cwd=ROOT,
            env=env,
        )
        os.close(replica)
        self.output = b""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed its side
                return
            if not chunk:
                return
            self.output += chunk

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    async def shows(self, needle: str, timeout: float = 30) -> None:
        for _ in range(int(timeout / 0.05)):
            if needle in self.text:
                return
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"never showed {needle!r}; output:\n{self.text[-3000:]}")

    async def exit_code(self, timeout: float = 60) -> int:
        for _ in range(int(timeout / 0.05)):
            code = self.process.poll()
            if code is not None:
                self.reader.join(timeout=5)
                return code
            await asyncio.sleep(0.05)
        raise AssertionError(f"still running after {timeout}s; output:\n{self.text[-3000:]}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.reader.join(timeout=5)
        os.close(self.master)


async def test_watch_ends_with_exit_0_when_the_rollout_succeeds(
    client: Client, task_queue: str, worker: Worker, address: str
) -> None:
    handle = await start_rollout(client, task_queue, dry_run_spec(TWO_GATES))
    await wait_for_status(handle, waiting_at(2))
    terminal = Terminal("status", handle.id, "--watch", "--address", address)
    try:
        await terminal.shows(f"sluice approve {handle.id} --step 2 --by ")
        assert "WaitingForApproval" in terminal.text and "watching (every 1s)" in terminal.text
        await handle.execute_update("approve", {"by": "alice", "step": 2})
        await terminal.shows(f"sluice approve {handle.id} --step 4 --by ")  # redrawn on the change
        await handle.execute_update("approve", {"by": "bob", "step": 4})
        assert await terminal.exit_code() == 0
    finally:
        terminal.close()
    assert "the rollout ended: Succeeded" in terminal.text
    assert "rollout complete at 0% stable / 100% canary" in terminal.text


async def test_watch_ends_with_exit_1_when_the_rollout_rolls_back(
    client: Client, task_queue: str, worker: Worker, address: str
) -> None:
    handle = await start_rollout(client, task_queue, dry_run_spec(TWO_GATES))
    await wait_for_status(handle, waiting_at(2))
    terminal = Terminal("status", handle.id, "--watch", "--address", address)
    try:
        await terminal.shows(f"sluice approve {handle.id} --step 2")
        await handle.execute_update("abort", {"by": "carol", "reason": "5xx up"})
        assert await terminal.exit_code() == 1
    finally:
        terminal.close()
    assert "the rollout ended: RolledBack" in terminal.text
    assert "RolloutAborted: aborted by carol: 5xx up" in terminal.text
    # `temporal workflow result` shows the failure's message: it names the type first.
    assert (await failure_of(handle)).message.startswith("RolloutAborted: aborted by carol: 5xx up")


async def test_watch_json_prints_one_line_per_change(
    client: Client, task_queue: str, worker: Worker, address: str
) -> None:
    handle = await start_rollout(client, task_queue, dry_run_spec([{"setWeight": 50}, {"approval": {}}]))
    await wait_for_status(handle, waiting_at(2))
    watching = asyncio.create_task(sluice("status", handle.id, "--watch", "-o", "json", "--address", address))
    await asyncio.sleep(1.5)  # let it print the waiting status first (any order passes below)
    await handle.execute_update("approve", {"by": "alice"})
    done = await watching
    assert done.returncode == 0, done.stderr
    statuses = [json.loads(line) for line in done.stdout.splitlines()]
    assert statuses[-1]["phase"] == "Succeeded" and all(s["rolloutId"] == handle.id for s in statuses)


async def test_status_by_service_json_output_and_unknown_names(
    client: Client, task_queue: str, worker: Worker, address: str
) -> None:
    spec = dry_run_spec(TWO_GATES)
    scheduled = f"rollout-default-{spec['service']}-2026-12-05T03:00:00Z"  # a schedule's run id
    handle = await client.start_workflow("Rollout", spec, id=scheduled, task_queue=task_queue)
    await wait_for_status(handle, waiting_at(2))

    by_service = await sluice("status", spec["service"], "--address", address)
    assert by_service.returncode == 0, by_service.stderr
    assert handle.id in by_service.stdout and "phase  WaitingForApproval  at step 2" in by_service.stdout
    assert max(len(line) for line in by_service.stdout.splitlines()) > 80  # piped: not cut at 80 columns

    as_json = await sluice("status", spec["service"], "--output", "json", "--address", address)
    assert json.loads(as_json.stdout)["rolloutId"] == handle.id

    unknown = one_line_error(await sluice("status", "no-such-rollout", "--address", address))
    assert unknown.startswith("error: no rollout 'no-such-rollout' in namespace default")
    await handle.execute_update("abort", {"by": "test"})


async def test_two_running_rollouts_of_one_service_are_named_not_guessed(
    client: Client, task_queue: str, worker: Worker, address: str
) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    handles = [
        await client.start_workflow(
            "Rollout",
            dry_run_spec(TWO_GATES, service=service, namespace=namespace),
            id=f"rollout-{namespace}-{service}",
            task_queue=task_queue,
        )
        for namespace in ("team-a", "team-b")
    ]
    for handle in handles:
        await wait_for_status(handle, waiting_at(2))
    message = one_line_error(await sluice("status", service, "--address", address))
    assert message.startswith(f"error: 2 rollouts of {service} are running: ")
    assert all(handle.id in message for handle in handles) and message.endswith("name one by its id")
    for handle in handles:
        await handle.execute_update("abort", {"by": "test"})


async def test_actions_reply_with_the_phase_after_the_action(
    client: Client, task_queue: str, worker: Worker, address: str
) -> None:
    handle = await start_rollout(client, task_queue, dry_run_spec(TWO_GATES))
    await wait_for_status(handle, waiting_at(2))

    refused = one_line_error(
        await sluice("approve", handle.id, "--step", "4", "--by", "alice", "--address", address)
    )
    assert refused == "error: approve refused: the rollout waits for approval at step 2, not step 4"

    approved = await sluice("approve", handle.id, "--step", "2", "--by", "alice", "--address", address)
    assert approved.returncode == 0, approved.stderr
    reply = approved.stdout.strip()
    assert reply.startswith("step 2 approved by alice; now ") and "at step 2" not in reply, reply

    await wait_for_status(handle, waiting_at(4))
    paused = await sluice("pause", handle.id, "--reason", "dashboards", "-o", "json", "--address", address)
    answer = json.loads(paused.stdout)
    assert answer["result"]["accepted"] and answer["status"]["phase"] == "Paused"
    assert answer["status"]["pauseConditions"][0]["message"] == "dashboards"

    aborted = await sluice("abort", handle.id, "--reason", "enough", "--by", "carol", "--address", address)
    assert aborted.returncode == 0, aborted.stderr
    assert "now RollingBack" in aborted.stdout or "now RolledBack" in aborted.stdout, aborted.stdout


async def test_start_warns_without_a_worker_and_refuses_a_running_id_in_one_line(
    client: Client, address: str, tmp_path: Path
) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(dry_run_spec(TWO_GATES)))
    queue = f"nobody-polls-{uuid.uuid4().hex[:8]}"
    workflow_id = f"rollout-test-{uuid.uuid4().hex[:8]}"
    start = (
        "start",
        str(spec_file),
        "--workflow-id",
        workflow_id,
        "--task-queue",
        queue,
        "--address",
        address,
    )

    first = await sluice(*start, "--output", "json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["workflowId"] == workflow_id
    assert first.stderr.startswith(f"warning: no worker polls task queue '{queue}' in namespace default")
    assert first.stderr.count("\n") == 1

    again = one_line_error(await sluice(*start))
    assert again.startswith(f"error: {workflow_id} is already running (started 20")
    assert f"sluice status {workflow_id} --watch" in again
    await client.get_workflow_handle(workflow_id).terminate("test over")


async def test_an_invalid_spec_fails_with_its_type_first(
    client: Client, task_queue: str, worker: Worker
) -> None:
    handle = await start_rollout(client, task_queue, dry_run_spec([{"setWeight": 150}]))
    assert (await failure_of(handle)).message.startswith(
        "InvalidSpec: invalid rollout spec: steps[0].setWeight"
    )


async def test_an_ended_rollout_shows_its_status_without_a_worker(
    client: Client, task_queue: str, address: str
) -> None:
    async with build_worker(client, task_queue):
        succeeded = await start_rollout(client, task_queue, dry_run_spec([{"setWeight": 100}]))
        await succeeded.result()
        aborted = await start_rollout(client, task_queue, dry_run_spec(TWO_GATES))
        await wait_for_status(aborted, waiting_at(2))
        await aborted.execute_update("abort", {"by": "carol", "reason": "enough"})
        await failure_of(aborted)
    # No worker answers the query now: the view comes from the result and the failure's details.
    shown = await sluice("status", succeeded.id, "--address", address)
    assert shown.returncode == 0, shown.stderr
    assert "phase  Succeeded  at step 1  rollout complete at 0% stable / 100% canary" in shown.stdout
    shown = await sluice("status", aborted.id, "--watch", "--address", address)
    assert shown.returncode == 1, shown.stderr
    assert "phase  RolledBack  at step 2  RolloutAborted: aborted by carol: enough" in shown.stdout


async def test_a_terminated_rollout_shows_the_status_its_worker_answers(
    client: Client, task_queue: str, address: str, worker: Worker
) -> None:
    """A terminated run carries no status of its own: ``status`` asks the query (a worker replays
    it) and shows where the rollout stood when it was stopped."""
    handle = await start_rollout(client, task_queue, dry_run_spec(TWO_GATES))
    await wait_for_status(handle, waiting_at(2))
    await handle.terminate("operator pulled the plug")
    shown = await sluice("status", handle.id, "--output", "json", "--address", address)
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status["rolloutId"] == handle.id and status["phase"] == "WaitingForApproval"
    assert status["weights"] == {"stable": 50, "canary": 50}
