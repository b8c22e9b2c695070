"""Fixtures for the end-to-end tests: the real local stack on free loopback ports.

Each module gets its own :class:`~sluice.stack.LocalStack` (dev server with a DB file, Envoy with
its RDS file, the two demo backends, ``python -m worker``), so the destructive tests never share
one with the others; the fixture stops every process it or a test started (replacement workers
and servers included), in reverse order, whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sluice.stack import LocalStack, StackPorts
from tests.support.binaries import require_binary
from tests.support.e2e import TemporalCli


@pytest.fixture(scope="module")
def temporal_binary() -> str:
    require_binary("envoy")
    return require_binary("temporal")


@pytest.fixture(scope="module")
def stack(temporal_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One stack per module, shared by its tests (each uses its own workflow id)."""
    running = LocalStack(tmp_path_factory.mktemp("stack"), StackPorts.free()).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def cli(stack: LocalStack, temporal_binary: str) -> TemporalCli:
    return TemporalCli(temporal_binary, stack.temporal.address)


@pytest.fixture
def clean_stack(stack: LocalStack) -> LocalStack:
    """The module's stack with the route reset to 100% stable and no faults."""
    stack.plane.reset()
    return stack
