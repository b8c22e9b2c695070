"""The Rollout's own decoding of its raw arguments, with the converter the worker uses: no server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.support.rollouts import dry_run_spec
from workflows.arguments import MAX_NESTING, decode_carried, decode_spec
from workflows.carried import RolloutState
from workflows.spec import SpecError
from workflows.state import RolloutStatus

CONVERTER = pydantic_data_converter.payload_converter


def raw(data: str | bytes, encoding: str = "json/plain") -> RawValue:
    body = data.encode() if isinstance(data, str) else data
    return RawValue(Payload(metadata={"encoding": encoding.encode()}, data=body))


def problems(args: list[RawValue]) -> tuple[str, list[str]]:
    with pytest.raises(SpecError) as caught:
        decode_spec(args, CONVERTER)
        decode_carried(args, CONVERTER)
    return caught.value.error_type, caught.value.problems


def test_a_spec_and_a_carried_state_decode() -> None:
    spec = dry_run_spec()
    state = RolloutState(status=RolloutStatus(rollout_id="r", service="s", namespace="default"))
    args = [raw(json.dumps(spec)), raw(state.model_dump_json())]
    assert decode_spec(args, CONVERTER) == spec
    assert decode_carried(args, CONVERTER) == state
    assert decode_carried(args[:1], CONVERTER) is None
    assert decode_carried([args[0], raw("null")], CONVERTER) is None


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
