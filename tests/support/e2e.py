"""Helpers for the end-to-end tests: the plain ``temporal`` CLI, split checks, the RDS file.

Everything here talks to 127.0.0.1 only and starts no long-lived process: :class:`TemporalCli`
runs one short ``temporal`` command at a time, with a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from scipy.stats import binomtest
from temporalio.client import Client

from sluice.stack import (
    LocalStack,
    StackError,
    TemporalDevServer,
    WorkerProcess,
    applied_route_version,
    poll_until,
)

__all__ = [
    "CliError",
    "TemporalCli",
    "assert_split",
    "completed_result",
    "failure_of",
    "measure_approve_to_served",
    "rds_route_action",
    "rds_weights",
    "replace_worker",
    "restart_server",
    "wait_until",
    "write_rds_weights",
    "write_spec",
]

T = TypeVar("T")


class CliError(AssertionError):
    """A ``temporal`` command exited non-zero where the test expected success."""


@dataclass
class TemporalCli:
    """The plain ``temporal`` binary against one server; every call has ``--address`` and a timeout."""

    binary: str
    address: str
    timeout: float = 30.0

    def run(
        self, *args: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [self.binary, *args, "--address", self.address]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout or self.timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise CliError(
                f"{' '.join(command)} exited {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done

    def json(self, *args: str, check: bool = True, timeout: float | None = None) -> Any:
        return json.loads(self.run(*args, "-o", "json", check=check, timeout=timeout).stdout)

    # -- workflows -----------------------------------------------------------------------

    def start(self, workflow_id: str, spec_file: Path, task_queue: str = "rollouts") -> dict[str, Any]:
        return dict(
            self.json(
                "workflow", "start", "--type", "Rollout", "--task-queue", task_queue,
                "--workflow-id", workflow_id, "--input-file", str(spec_file),
            )
        )  # fmt: skip

    def signal(self, workflow_id: str, name: str, payload: dict[str, Any]) -> None:
        self.run(
            "workflow", "signal", "--workflow-id", workflow_id, "--name", name, "--input", json.dumps(payload)
        )

    def update(
        self, workflow_id: str, name: str, payload: Any, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``temporal workflow update execute``; with ``check=False`` the caller reads the refusal."""
        text = payload if isinstance(payload, str) else json.dumps(payload)
        return self.run(
            "workflow", "update", "execute", "--workflow-id", workflow_id, "--name", name,
            "--input", text, "-o", "json", check=check,
        )  # fmt: skip

    def update_result(self, workflow_id: str, name: str, payload: Any) -> dict[str, Any]:
        return dict(json.loads(self.update(workflow_id, name, payload).stdout)["result"])

    def status(self, workflow_id: str) -> dict[str, Any]:
        answer = self.json("workflow", "query", "--workflow-id", workflow_id, "--name", "status")
        return dict(answer["queryResult"][0])

    def describe(self, workflow_id: str) -> dict[str, Any]:
        return dict(self.json("workflow", "describe", "--workflow-id", workflow_id))

    def cancel(self, workflow_id: str) -> None:
        self.run("workflow", "cancel", "--workflow-id", workflow_id)

    def result(self, workflow_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for the end; ``{"status": "COMPLETED"|"FAILED"|..., "closeEvent": {...}}``.

        The CLI exits 1 when the workflow failed, and still prints the JSON.
        """
        done = self.run(
            "workflow", "result", "--workflow-id", workflow_id, "-o", "json", check=False, timeout=timeout
        )
        try:
            return dict(json.loads(done.stdout))
        except json.JSONDecodeError:
            raise CliError(f"workflow result for {workflow_id}: {done.stdout}\n{done.stderr}") from None

    def history(self, workflow_id: str) -> list[dict[str, Any]]:
        """The workflow's history events (``temporal workflow show``)."""
        return list(self.json("workflow", "show", "--workflow-id", workflow_id)["events"])

    def activities(self, workflow_id: str) -> list[tuple[str, int]]:
        """``(activity type, attempt)`` of every activity the history shows started, in order.

        A retried activity appears once, with the attempt that finally ran it.
        """
        scheduled: dict[str, str] = {}
        started: list[tuple[str, int]] = []
        for event in self.history(workflow_id):
            attributes = event.get("activityTaskScheduledEventAttributes")
            if attributes is not None:
                scheduled[event["eventId"]] = attributes["activityType"]["name"]
            attributes = event.get("activityTaskStartedEventAttributes")
            if attributes is not None:
                started.append((scheduled[attributes["scheduledEventId"]], int(attributes.get("attempt", 1))))
        return started

    def list_workflows(self, query: str) -> list[dict[str, Any]]:
        answer = self.json("workflow", "list", "--query", query)
        return list(answer or [])

    def wait_status(
        self, workflow_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> dict[str, Any]:
        """Query ``status`` until ``predicate`` holds."""
        last: dict[str, Any] = {}

        def matches() -> bool:
            nonlocal last
            last = self.status(workflow_id)
            return predicate(last)

        wait_until(matches, timeout, lambda: f"status of {workflow_id} never matched; last: {_brief(last)}")
        return last


def completed_result(outcome: dict[str, Any]) -> dict[str, Any]:
    """The workflow's return value from :meth:`TemporalCli.result` of a completed workflow."""
    assert outcome["status"] == "COMPLETED", json.dumps(outcome, indent=1)[:3000]
    attributes = outcome["closeEvent"]["workflowExecutionCompletedEventAttributes"]
    return dict(attributes["result"][0])


def failure_of(outcome: dict[str, Any]) -> dict[str, Any]:
    """The failure (``message``, ``applicationFailureInfo.type``...) of a failed workflow."""
    assert outcome["status"] == "FAILED", json.dumps(outcome, indent=1)[:3000]
    return dict(outcome["closeEvent"]["workflowExecutionFailedEventAttributes"]["failure"])


def _brief(status: dict[str, Any]) -> dict[str, Any]:
    keys = ("phase", "currentStep", "weights", "waitingFor", "message", "errorType")
    return {key: status.get(key) for key in keys}


def wait_until(
    predicate: Callable[[], T], timeout: float, what: str | Callable[[], str], every: float = 0.05
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    try:
        return poll_until(predicate, timeout, what, every)
    except StackError as error:
        raise AssertionError(str(error)) from None


def write_spec(directory: Path, spec: dict[str, Any], name: str = "spec.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(spec, indent=2))
    return path


# -- the data plane ---------------------------------------------------------------------------


def assert_split(
    seen: Counter[str], stable: str, canary: str, canary_weight: int, alpha: float = 1e-6
) -> None:
    """The sampled split is what ``canary_weight`` promises: exact at 0/100, else a binomial test."""
    total = sum(seen.values())
    assert set(seen) <= {stable, canary}, f"unexpected answers: {dict(seen)}"
    hits = seen[canary]
    if canary_weight == 0:
        assert hits == 0, f"expected 100% {stable}, got {dict(seen)}"
    elif canary_weight == 100:
        assert seen[stable] == 0, f"expected 100% {canary}, got {dict(seen)}"
    else:
        p_value = binomtest(hits, total, canary_weight / 100).pvalue
        assert p_value > alpha, f"{dict(seen)} is not {100 - canary_weight}/{canary_weight} (p={p_value:.2e})"


def rds_route_action(path: Path, route_config: str = "reviews") -> dict[str, Any]:
    """The ``route`` action of the first route of the named RouteConfiguration in an RDS file."""
    document = yaml.safe_load(path.read_text())
    config = next(r for r in document["resources"] if r.get("name") == route_config)
    return dict(config["virtual_hosts"][0]["routes"][0]["route"])


def rds_weights(path: Path, route_config: str = "reviews") -> dict[str, int]:
    """Cluster -> weight of that route (a single ``cluster`` reads as weight 100)."""
    action = rds_route_action(path, route_config)
    if "cluster" in action:
        return {action["cluster"]: 100}
    return {entry["name"]: int(entry.get("weight", 0)) for entry in action["weighted_clusters"]["clusters"]}


def write_rds_weights(
    path: Path, weights: dict[str, int], version: str, route_config: str = "reviews"
) -> None:
    """Edit the route's weights by hand, the way an operator would: temp file + atomic rename."""
    document = yaml.safe_load(path.read_text())
    config = next(r for r in document["resources"] if r.get("name") == route_config)
    action = config["virtual_hosts"][0]["routes"][0]["route"]
    action.pop("cluster", None)
    action["weighted_clusters"] = {"clusters": [{"name": n, "weight": w} for n, w in weights.items()]}
    document["version_info"] = version
    temp = path.with_name(f".{path.name}.by-hand")
    temp.write_text(yaml.safe_dump(document, sort_keys=False))
    os.replace(temp, path)


async def measure_approve_to_served(
    client: Client,
    workflow_id: str,
    step: int,
    admin_url: str,
    route_config: str = "reviews",
    by: str = "bench",
    timeout: float = 10.0,
) -> float:
    """Seconds from an ``approve`` update returning to Envoy serving a new route version.

    Approves ``step`` through the Python client (pydantic converter), then polls Envoy's admin
    config dump without sleeping until ``version_info`` of ``route_config`` changes.
    """
    with httpx.Client(timeout=2.0) as admin:
        before = applied_route_version(admin_url, route_config, admin)
        await client.get_workflow_handle(workflow_id).execute_update("approve", {"by": by, "step": step})
        returned = time.perf_counter()
        deadline = returned + timeout
        while applied_route_version(admin_url, route_config, admin) == before:
            if time.perf_counter() > deadline:
                raise AssertionError(f"Envoy still serves {before} {timeout}s after approving step {step}")
        return time.perf_counter() - returned


# -- the local stack --------------------------------------------------------------------------


def replace_worker(stack: LocalStack, name: str) -> WorkerProcess:
    """Start a fresh ``python -m worker`` (after the old one was killed); the stack stops it."""
    worker = stack.new_worker(log_name=f"{name}.log")
    stack.started.append(worker)  # stopped with the stack even if its start fails
    worker.start()
    stack.worker = worker
    return worker


def restart_server(stack: LocalStack) -> TemporalDevServer:
    """A new dev server on the same port with the same DB file, in the old one's stop slot."""
    old = stack.temporal
    assert not old.running(), "kill the old server first"
    server = TemporalDevServer(stack.state_dir, old.port, None, db_file=old.db_file)
    stack.started[stack.started.index(old)] = server
    stack.temporal = server
    server.start()
    return server
