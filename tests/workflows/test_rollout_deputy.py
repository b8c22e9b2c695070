"""The worker is not a confused deputy: what a spec can make it touch, send and read back.

Whole rollouts on the real dev server with the in-process worker built as ``python -m worker``
builds it (its policy from the environment), real RDS files, real HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from sluice.stack import write_initial_routes
from tests.support.http import page_server
from tests.support.rollouts import dry_run_spec, failure_of, start_rollout, wait_for_status
from worker.main import build_worker

SECRET = "sk-live-7f3a9c1e5b2d4f6a8c0e"


@pytest.fixture
def managed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The one directory of routes files this worker manages (``SLUICE_ROUTES_DIRS``)."""
    directory = tmp_path / "managed"
    directory.mkdir()
    monkeypatch.setenv("SLUICE_ROUTES_DIRS", str(directory))
    return directory


@pytest.fixture
async def worker(client: Client, task_queue: str, managed: Path) -> AsyncIterator[Worker]:
    async with build_worker(client, task_queue) as running:
        yield running


def envoy_spec(routes_file: str, steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return dry_run_spec(
        steps or [{"setWeight": 10}],
        router={"kind": "envoy", "routesFile": routes_file, "routeConfig": "reviews"},
    )


def verify_spec(url: str, **verify: Any) -> dict[str, Any]:
    # 10 samples can check 0% and 100% only (a 10% split check with 10 samples is refused)
    return dry_run_spec([{"setWeight": 100}], verify={"url": url, "samples": 10, **verify})


async def history_text(handle: WorkflowHandle[Any, Any]) -> str:
    return (await handle.fetch_history()).to_json()


# -- routes files ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["relative", "absolute"])
async def test_routes_file_outside_the_managed_directories_is_refused(
    client: Client, task_queue: str, worker: Worker, managed: Path, tmp_path: Path, where: str
) -> None:
    other = tmp_path / "other-team" / "rds.yaml"
    other.parent.mkdir()
    write_initial_routes(other, "reviews-v1")
    before = other.read_bytes()
    # ../other-team/rds.yaml from inside the managed directory, or the absolute path
    path = str(managed / ".." / "other-team" / "rds.yaml") if where == "relative" else str(other)
    handle = await start_rollout(client, task_queue, envoy_spec(path))
    error = await failure_of(handle)
    assert error.type == "NotAllowed", error
    assert "router.routesFile" in error.message and "SLUICE_ROUTES_DIRS" in error.message
    assert other.read_bytes() == before


async def test_symlinked_routes_file_is_edited_through_the_link(
    client: Client, task_queue: str, worker: Worker, managed: Path
) -> None:
    target = managed / "real" / "rds.yaml"
    target.parent.mkdir()
    write_initial_routes(target, "reviews-v1")
    link = managed / "rds.yaml"
    link.symlink_to(target)
    handle = await start_rollout(client, task_queue, envoy_spec(str(link)))
    await handle.result()
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "reviews-v2" in target.read_text()


async def test_symlink_leading_out_of_the_managed_directories_is_refused(
    client: Client, task_queue: str, worker: Worker, managed: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "rds.yaml"
    write_initial_routes(outside, "reviews-v1")
    before = outside.read_bytes()
    link = managed / "rds.yaml"
    link.symlink_to(outside)
    error = await failure_of(await start_rollout(client, task_queue, envoy_spec(str(link))))
    assert error.type == "NotAllowed" and "SLUICE_ROUTES_DIRS" in error.message
    assert link.is_symlink() and outside.read_bytes() == before


async def test_a_file_that_does_not_parse_is_not_quoted_into_the_history(
    client: Client, task_queue: str, worker: Worker, managed: Path
) -> None:
    credentials = managed / "credentials.yaml"
    # not YAML: the error points at the line holding the key
    credentials.write_text(f"user: deploy\napi_key: {SECRET}: rotated\n")
    handle = await start_rollout(client, task_queue, envoy_spec(str(credentials)))
    error = await failure_of(handle)
    assert error.type == "RouteInvalid" and "line" in error.message
    assert SECRET not in await history_text(handle)


# -- outbound requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://169.254.10.1:9901/",
        "http://[fe80::1]:9090/",
    ],
)
async def test_verify_url_to_link_local_or_metadata_is_refused_before_any_request(
    client: Client, task_queue: str, worker: Worker, no_network: list[str], url: str
) -> None:
    handle = await start_rollout(client, task_queue, verify_spec(url, header="x-version"))
    error = await failure_of(handle)
    assert error.type == "NotAllowed", error
    assert "verify.url" in error.message and "SLUICE_ALLOWED_HOSTS" in error.message
    assert no_network == []


async def test_envoy_admin_on_a_metadata_address_is_refused_before_traffic_moves(
    client: Client, task_queue: str, worker: Worker, managed: Path, no_network: list[str]
) -> None:
    routes = managed / "rds.yaml"
    write_initial_routes(routes, "reviews-v1")
    before = routes.read_bytes()
    spec = envoy_spec(str(routes))
    spec["router"]["admin"] = "http://169.254.169.254"
    error = await failure_of(await start_rollout(client, task_queue, spec))
    assert error.type == "NotAllowed" and "router.admin" in error.message
    assert no_network == [] and routes.read_bytes() == before


async def test_verify_url_with_credentials_is_refused(
    client: Client, task_queue: str, worker: Worker
) -> None:
    with page_server("reviews-v1") as server:
        url = server.url.replace("http://", "http://admin:hunter2@") + "/"
        error = await failure_of(await start_rollout(client, task_queue, verify_spec(url, header="x-v")))
        assert error.type == "NotAllowed" and "verify.url" in error.message
        assert "hunter2" not in error.message
        assert server.requests == []


# -- what is read back -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["match", "header"])
async def test_unknown_answers_are_counted_not_quoted(
    client: Client, task_queue: str, worker: Worker, how: str
) -> None:
    page = f"<html><body>internal config: token={SECRET};</body></html>"
    with page_server(page, headers={"x-internal-token": SECRET}) as server:
        classifier = {"match": r"token=([^;]+);"} if how == "match" else {"header": "x-internal-token"}
        handle = await start_rollout(client, task_queue, verify_spec(server.url + "/", **classifier))
        error = await failure_of(handle)
        assert len(server.requests) >= 10
    assert error.type == "VerificationFailed", error
    assert "other than stable and canary" in error.message
    assert SECRET not in await history_text(handle)
    verification = (await handle.query("status"))["verifications"][0]["result"]
    assert verification["otherAnswers"] == 10 and verification["other"] == {}


# -- regular expressions -----------------------------------------------------------------------


async def test_a_catastrophic_regex_does_not_stall_other_rollouts(
    client: Client, task_queue: str, worker: Worker
) -> None:
    bystander = await start_rollout(client, task_queue, dry_run_spec([{"setWeight": 10}, {"approval": {}}]))
    await wait_for_status(bystander, lambda s: s["phase"] == "WaitingForApproval")
    # (a+)+$ over 25 a's and a '!' backtracks for seconds per answer in a backtracking engine
    with page_server("a" * 25 + "!") as server:
        handle = await start_rollout(client, task_queue, verify_spec(server.url + "/", match=r"(a+)+$"))
        deadline = time.monotonic() + 30
        while not server.requests and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert server.requests, "the sampling never started"
        started = time.monotonic()
        status = await bystander.query("status")
        answered = time.monotonic() - started
        error = await failure_of(handle)
    assert status["phase"] == "WaitingForApproval"
    assert answered < 2.0, f"the status query of another rollout took {answered:.1f}s"
    assert error.type == "VerificationFailed" and "matched nothing" in error.message
    await bystander.execute_update("abort", {"by": "test", "reason": "done"})
