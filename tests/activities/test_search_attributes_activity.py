"""``search_attributes_registered`` answers no only when the server will not tell; a busy or
unreachable server fails the local activity, which retries (a unit test with a stand-in client:
the registered case runs against the real dev server in tests/sluice/test_list_rollouts.py)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from activities.search_attributes import search_attributes_registered


class _Operator:
    def __init__(self, status: RPCStatusCode) -> None:
        self.status = status

    async def list_search_attributes(self, request: Any) -> Any:
        raise RPCError("no", self.status, b"")


class _Client:
    namespace = "default"

    def __init__(self, status: RPCStatusCode) -> None:
        self.operator_service = _Operator(status)


async def _ask(status: RPCStatusCode) -> bool:
    env = ActivityEnvironment(client=cast(Client, _Client(status)))
    return bool(await env.run(search_attributes_registered, ["SluicePhase"]))


@pytest.mark.parametrize(
    "status", [RPCStatusCode.UNIMPLEMENTED, RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.NOT_FOUND]
)
async def test_a_server_that_will_not_tell_means_no(status: RPCStatusCode) -> None:
    assert await _ask(status) is False


@pytest.mark.parametrize(
    "status", [RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED]
)
async def test_a_busy_or_unreachable_server_has_not_answered(status: RPCStatusCode) -> None:
    with pytest.raises(RPCError):
        await _ask(status)
