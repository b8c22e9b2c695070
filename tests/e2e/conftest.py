"""Fixtures for the end-to-end tests: the real local stack on free loopback ports.

Each module starts its own :class:`~sluice.stack.LocalStack` (dev server with a DB file, Envoy
with its RDS file, the two demo backends, ``python -m worker``); the fixture stops every process
it or a test started, in reverse order, whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sluice.backend import Fault
from sluice.stack import LocalStack, StackPorts, TemporalDevServer, WorkerProcess, write_initial_routes
from tests.support.binaries import require_binary
from tests.support.e2e import TemporalCli, applied_route_version, wait_until

ROUTE_CONFIG = "reviews"


@pytest.fixture(scope="module")
def temporal_binary() -> str:
    require_binary("envoy")
    return require_binary("temporal")


def start_stack(state_dir: Path) -> LocalStack:
    """Start the whole stack; on any failure stop what did start."""
    return LocalStack(state_dir, StackPorts.free()).start()


@pytest.fixture(scope="module")
def stack(temporal_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One stack shared by the tests of a module (each test uses its own workflow id)."""
    running = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def cli(stack: LocalStack, temporal_binary: str) -> TemporalCli:
    return TemporalCli(temporal_binary, stack.temporal.address)


def reset_routes(stack: LocalStack) -> None:
    """Back to the initial RDS file (100% stable, single cluster) and no faults; wait until
    Envoy serves it."""
    for backend in (stack.stable, stack.canary):
        backend.set_fault(Fault())
    write_initial_routes(stack.envoy.routes_file, stack.stable_name)
    wait_until(
        lambda: applied_route_version(stack.envoy.admin_url, ROUTE_CONFIG) == "initial",
        10,
        "Envoy did not load the reset RDS file",
    )


@pytest.fixture
def clean_stack(stack: LocalStack) -> LocalStack:
    """The shared stack with the route reset before the test."""
    reset_routes(stack)
    return stack


def replace_worker(stack: LocalStack, name: str) -> WorkerProcess:
    """Start a fresh ``python -m worker`` (after the old one was killed); the stack stops it."""
    worker = WorkerProcess(stack.state_dir, stack.temporal.address, stack.task_queue, cwd=Path.cwd(), log_name=f"{name}.log")
    stack.started.append(worker)  # stopped with the stack even if start_and_wait fails
    worker.start_and_wait()
    stack.worker = worker
    return worker


def restart_server(stack: LocalStack) -> TemporalDevServer:
    """A new dev server on the same port and the same DB file, in the old one's stop slot."""
    old = stack.temporal
    assert not old.running(), "kill the old server first"
    server = TemporalDevServer(stack.state_dir, old.port, None, db_file=old.db_file)
    stack.started[stack.started.index(old)] = server
    stack.temporal = server
    server.start_and_wait()
    return server


def envoy_serves(stack: LocalStack) -> bool:
    return httpx.get(stack.envoy.url, timeout=2).status_code == 200
