"""``sluice dev --fresh`` (``LocalStack.start(reset_routes=True)``) on a database that holds a
running rollout: it refuses to reset the route under it, naming the rollout."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.stack import LocalStack, StackError, StackPorts
from tests.support.e2e import TemporalCli, rds_weights, write_spec


def test_fresh_refuses_to_reset_a_route_a_running_rollout_owns(temporal_binary: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = LocalStack(state, StackPorts.free()).start()
    try:
        cli = TemporalCli(temporal_binary, first.temporal.address)
        spec = first.spec_for([{"setWeight": 30}, {"approval": {}}, {"setWeight": 100}])
        cli.start("rollout-default-reviews", write_spec(tmp_path, spec))
        cli.wait_status("rollout-default-reviews", lambda s: s["phase"] == "WaitingForApproval")
    finally:
        first.stop()
    assert rds_weights(first.envoy.routes_file) == {"reviews-v1": 70, "reviews-v2": 30}

    again = LocalStack(state, StackPorts.free(), with_worker=False)
    with pytest.raises(StackError, match=r"rollout rollout-default-reviews is running on .*Abort it first"):
        again.start(reset_routes=True)
    assert not again.started  # everything it had started is stopped again
    assert rds_weights(first.envoy.routes_file) == {"reviews-v1": 70, "reviews-v2": 30}  # untouched

    kept = LocalStack(state, StackPorts.free(), with_worker=False).start(reset_routes=False)
    try:
        assert rds_weights(kept.envoy.routes_file) == {"reviews-v1": 70, "reviews-v2": 30}
    finally:
        kept.stop()
