"""The Rollout's own decoding of its raw arguments, with the converter the worker uses: no server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.support.rollouts import dry_run_spec
from workflows.arguments import MAX_NESTING, decode_carried, decode_spec
from workflows.carried import RolloutState
from workflows.measurements import AnalysisState, MetricResult
from workflows.spec import SpecError, validate_spec
from workflows.state import RolloutStatus, WaitingFor, plan_view

CONVERTER = pydantic_data_converter.payload_converter


def raw(data: str | bytes, encoding: str = "json/plain") -> RawValue:
    body = data.encode() if isinstance(data, str) else data
    return RawValue(Payload(metadata={"encoding": encoding.encode()}, data=body))


SPEC = dry_run_spec([{"setWeight": 10}, {"approval": {}}, {"setWeight": 100}])
PLAN = validate_spec(SPEC)


def problems(args: list[RawValue]) -> tuple[str, list[str]]:
    with pytest.raises(SpecError) as caught:
        decode_spec(args, CONVERTER)
        decode_carried(args, CONVERTER, PLAN)
    return caught.value.error_type, caught.value.problems


def carried(**changes: Any) -> RolloutState:
    """The state a run of SPEC carries when it continues as new at its gate (step 2)."""
    status = RolloutStatus(
        rollout_id="r", service=SPEC["service"], namespace="default", current_step=2, steps=plan_view(PLAN)
    )
    return RolloutState(status=status.model_copy(update=changes))


def test_a_spec_and_a_carried_state_decode() -> None:
    state = carried()
    args = [raw(json.dumps(SPEC)), raw(state.model_dump_json())]
    assert decode_spec(args, CONVERTER) == SPEC
    assert decode_carried(args, CONVERTER, PLAN) == state
    assert decode_carried(args[:1], CONVERTER, PLAN) is None
    assert decode_carried([args[0], raw("null")], CONVERTER, PLAN) is None


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (
            carried(steps=[]),
            "carried.status.steps: must be the spec's plan (initialize, setWeight, approval,",
        ),
        (carried(current_step=0), "carried.status.currentStep: must be a step of the plan, 1..3, got 0"),
        (carried(current_step=9), "carried.status.currentStep: must be a step of the plan, 1..3, got 9"),
        (
            carried(waiting_for=WaitingFor(kind="approval", step=7, since=datetime(2026, 1, 1, tzinfo=UTC))),
            "carried.status.waitingFor.step: must be a step of the plan, 1..3",
        ),
        (
            RolloutState(
                status=carried().status,
                analysis_state=AnalysisState(metrics={"latency": MetricResult(name="latency")}),
            ),
            "carried.analysisState.metrics: the spec has no metric 'latency'",
        ),
    ],
)
def test_a_carried_state_must_fit_the_plan(state: RolloutState, expected: str) -> None:
    error_type, found = problems([raw(json.dumps(SPEC)), raw(state.model_dump_json())])
    assert error_type == "InvalidArguments" and found[0].startswith(expected), found


@pytest.mark.parametrize(
    ("args", "error_type", "expected"),
    [
        ([], "InvalidArguments", "arguments: Rollout takes one argument, the rollout spec"),
        ([raw("{}")] * 3, "InvalidArguments", "arguments: Rollout takes one argument"),
        ([raw("{}", "binary/x")], "InvalidSpec", "spec: unknown payload encoding 'binary/x'"),
        ([raw("{", "json/plain")], "InvalidSpec", "spec: cannot be decoded as json/plain (Invalid JSON"),
        ([raw("{}", "json/protobuf")], "InvalidSpec", "spec: cannot be decoded as json/protobuf"),
        ([raw('{"a": {"b": ' + "[" * 300 + "]" * 300 + "}}")], "InvalidSpec", "a.b: nested more than 200"),
        ([raw("[" * 300 + "]" * 300)], "InvalidSpec", "spec: nested more than 200 levels deep"),
        ([raw("[" * 100_000 + "]" * 100_000)], "InvalidSpec", "spec: cannot be decoded as json/plain"),
        ([raw("{}"), raw('"x"')], "InvalidArguments", "carried: must be the state a rollout carries"),
        ([raw("{}"), raw("{}")], "InvalidArguments", "carried.status: required"),
        ([raw("{}"), raw("{}", "binary/x")], "InvalidArguments", "carried: unknown payload encoding"),
    ],
)
def test_every_shape_of_argument_is_a_typed_problem(
    args: list[RawValue], error_type: str, expected: str
) -> None:
    got_type, got = problems(args)
    assert got_type == error_type and got[0].startswith(expected), got


def test_nesting_is_measured_as_the_parser_does() -> None:
    ok: Any = decode_spec([raw("[" * MAX_NESTING + "]" * MAX_NESTING)], CONVERTER)
    assert isinstance(ok, list)
