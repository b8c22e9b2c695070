"""Property: no input leaves a Rollout Running with its workflow task failing.

Hypothesis builds bad starts (a valid spec with fields nulled, replaced by junk, made huge or nested
deeply, keys added or removed; wrong argument counts, junk carried state, other encodings, bytes
that are not JSON) and starts them, a batch at a time, on the real dev server. Every one must
either fail at once with ``InvalidSpec``/``InvalidArguments``, or, when the mutation happened to
leave a valid spec, run with healthy workflow tasks. The local decoding and validation (the same
functions the workflow calls) must agree with what the workflow did.

Derandomized and without an example database, so every run tries the same inputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from worker.main import build_worker
from workflows.arguments import decode_carried, decode_spec
from workflows.carried import RolloutState
from workflows.spec import SpecError, validate_spec
from workflows.state import RolloutStatus, plan_view

BATCH = 20
BATCHES = 15  # 300 starts
SETTLE_SECONDS = 10.0
"""How long one start may take to show its outcome while its batch is processed."""

BASE: dict[str, Any] = {
    "service": "reviews",
    "router": {"kind": "dryRun"},
    "stable": {"host": "reviews-v1"},
    "canary": {"host": "reviews-v2"},
    "steps": [
        {"setWeight": 10},
        {"approval": {"timeout": "1h"}},
        {"pause": {"duration": "10m"}},
        {"setWeight": 100},
        {"removeOld": {"delay": "30s"}},
    ],
    "verify": {"url": "http://127.0.0.1:9/", "header": "x-version", "requestTimeout": "5s"},
    "analysis": {
        "interval": "30s",
        "metrics": [
            {"name": "errors", "prometheus": {"address": "http://127.0.0.1:9", "query": "up"}, "max": 1}
        ],
    },
}
DURATIONS: list[tuple[str | int, ...]] = [
    ("steps", 1, "approval", "timeout"),
    ("steps", 2, "pause", "duration"),
    ("steps", 4, "removeOld", "delay"),
    ("verify", "requestTimeout"),
    ("analysis", "interval"),
    ("analysis", "metrics", 0, "prometheus", "timeout"),
]
STEP_KINDS = [(0, "setWeight"), (1, "approval"), (2, "pause"), (3, "setWeight"), (4, "removeOld")]
ENCODINGS = ["binary/sluice", "json/protobuf", "binary/protobuf", "binary/null", "binary/plain", ""]
Path = tuple[str | int, ...]


class Literal(str):
    """JSON text put into the spec as is (nesting deeper than a Python dict can be dumped)."""


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path into ``value`` (objects and lists), the root excluded."""
    found: list[Path] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


def objects(value: Any, prefix: Path = ()) -> list[Path]:
    return [()] + [p for p in paths(value, prefix) if isinstance(get(value, p), dict)]


def get(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


def put(value: Any, path: Path, new: Any) -> None:
    get(value, path[:-1])[path[-1]] = new


def dumps(value: Any) -> str:
    """JSON with the ``Literal`` parts inserted verbatim (NaN and Infinity as Python writes them)."""
    literals: dict[str, str] = {}

    def mark(node: Any) -> Any:
        if isinstance(node, Literal):
            marker = f"@literal-{len(literals)}@"
            literals[json.dumps(marker)] = str(node)
            return marker
        if isinstance(node, dict):
            return {key: mark(child) for key, child in node.items()}
        if isinstance(node, list):
            return [mark(child) for child in node]
        return node

    text = json.dumps(mark(value))
    for marker, literal in literals.items():
        text = text.replace(marker, literal)
    return text


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**20, 10**400, -(10**400), 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
huge_durations = st.one_of(
    st.floats(min_value=3650 * 86400 + 1, allow_infinity=True),
    st.sampled_from([1e300, 10**20, 10**400, Literal("1e400"), Literal("NaN"), Literal("-Infinity")]),
    st.builds(
        lambda n, unit: f"{n}{unit}", st.integers(10**5, 10**30), st.sampled_from(["s", "m", "h", "d"])
    ),
    st.builds(lambda n: f"P{n}D", st.integers(3651, 10**15)),
)
junk = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
deep = st.builds(
    lambda depth, kind: Literal(("[" if kind else '{"a":') * depth + ("]" if kind else "}") * depth),
    st.integers(min_value=150, max_value=1200),
    st.booleans(),
)


@st.composite
def bad_specs(draw: st.DrawFn) -> Any:
    spec = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        operation = draw(
            st.sampled_from(["replace", "null-kind", "huge-duration", "extra", "deep", "delete"])
        )
        if operation == "replace":
            put(spec, draw(st.sampled_from(paths(spec))), draw(junk))
        elif operation == "null-kind":
            index, kind = draw(st.sampled_from(STEP_KINDS))
            if isinstance(spec.get("steps"), list) and len(spec["steps"]) > index:
                spec["steps"][index] = {kind: None}
        elif operation == "huge-duration":
            path = draw(st.sampled_from(DURATIONS))
            with contextlib.suppress(KeyError, IndexError, TypeError):  # its parent may be gone
                put(spec, path, draw(huge_durations))
        elif operation == "extra":
            target = get(spec, draw(st.sampled_from(objects(spec))))
            target[draw(st.text(min_size=1, max_size=8))] = draw(junk | deep)
        elif operation == "deep":
            put(spec, draw(st.sampled_from(paths(spec))), draw(deep))
        else:
            target = get(spec, draw(st.sampled_from(objects(spec))))
            if target:
                del target[draw(st.sampled_from(sorted(target)))]
    return spec


def payload(data: str | bytes, encoding: str = "json/plain") -> RawValue:
    body = data.encode() if isinstance(data, str) else data
    return RawValue(Payload(metadata={"encoding": encoding.encode()}, data=body))


@st.composite
def carried_states(draw: st.DrawFn) -> Any:
    """A state as BASE's rollout carries it into a new run, then bent: another plan, a step off
    the plan, a field replaced by junk."""
    plan = plan_view(validate_spec(BASE))
    status = RolloutStatus(
        rollout_id="r",
        service="reviews",
        namespace="default",
        current_step=draw(st.integers(min_value=-2, max_value=len(plan) + 2)),
        steps=plan[: draw(st.integers(min_value=0, max_value=len(plan)))],
    )
    state = RolloutState(status=status).model_dump(mode="json", by_alias=True)
    if draw(st.booleans()):
        put(state, draw(st.sampled_from(paths(state))), draw(junk))
    return state


@st.composite
def bad_starts(draw: st.DrawFn) -> list[RawValue]:
    spec = dumps(draw(bad_specs()))
    shape = draw(st.sampled_from(["spec"] * 5 + ["carried", "state", "three", "none", "encoding", "bytes"]))
    if shape == "carried":
        return [payload(spec), payload(dumps(draw(junk | deep)))]
    if shape == "state":
        return [payload(dumps(BASE)), payload(dumps(draw(carried_states())))]
    if shape == "three":
        return [payload(spec), payload("null"), payload(dumps(draw(junk)))]
    if shape == "none":
        return []
    if shape == "encoding":
        return [payload(spec, draw(st.sampled_from(ENCODINGS) | st.text(max_size=20)))]
    if shape == "bytes":
        return [payload(draw(st.binary(max_size=64)))]
    return [payload(spec)]


def locally_invalid(args: list[RawValue]) -> bool:
    """What the workflow's own decoding and validation say, run here (no sandbox, no server)."""
    converter = pydantic_data_converter.payload_converter
    try:
        decode_carried(args, converter, validate_spec(decode_spec(args, converter)))
    except SpecError:
        return True
    return False


@dataclass
class Outcome:
    """How a start ended up once its first workflow task ran."""

    closed: str | None
    """The close event's type, or None while it runs."""
    failure_type: str | None
    failure_message: str
    task_failures: list[str]


CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "canceled",
}


async def outcome(handle: WorkflowHandle[Any, Any]) -> Outcome:
    """Closed, failed workflow task, or Running with a completed (healthy) workflow task."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        events = [event async for event in handle.fetch_history_events()]
        task_failures = [
            e.workflow_task_failed_event_attributes.failure.message
            for e in events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]
        last = events[-1]
        if task_failures:
            return Outcome(None, None, "", task_failures)
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            failure = last.workflow_execution_failed_event_attributes.failure
            info = failure.application_failure_info
            kind = info.type if info.non_retryable else f"{info.type} (retryable)"
            return Outcome("failed", kind, failure.message, [])
        if last.event_type in CLOSED:
            return Outcome(CLOSED[last.event_type], None, "", [])
        if any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events):
            return Outcome(None, None, "", [])
        if time.monotonic() > deadline:
            return Outcome(None, None, "", [f"no workflow task completed within {SETTLE_SECONDS}s"])
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def property_env(dev_env: WorkflowEnvironment) -> AsyncIterator[tuple[Client, str]]:
    queue = f"property-{uuid.uuid4()}"
    async with build_worker(dev_env.client, queue):
        yield dev_env.client, queue


@settings(
    max_examples=BATCHES,
    deadline=None,
    derandomize=True,
    # No shrinking: the assertion names the one bad start of the batch already, and shrinking
    # batches of starts on a server takes longer than the test's timeout.
    phases=[Phase.explicit, Phase.generate],
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(starts=st.lists(bad_starts(), min_size=BATCH, max_size=BATCH))
async def test_no_bad_start_stays_running_with_a_failing_workflow_task(
    property_env: tuple[Client, str], starts: list[list[RawValue]]
) -> None:
    client, queue = property_env
    handles = await asyncio.gather(
        *(
            client.start_workflow("Rollout", args=args, id=f"prop-{uuid.uuid4()}", task_queue=queue)
            for args in starts
        )
    )
    try:
        outcomes = await asyncio.gather(*(outcome(handle) for handle in handles))
    finally:
        for handle in handles:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("property test: done")
    for args, result in zip(starts, outcomes, strict=True):
        shown = [(raw.payload.metadata.get("encoding"), raw.payload.data[:300]) for raw in args]
        assert not result.task_failures, f"workflow task failed for {shown}: {result.task_failures[0]}"
        invalid = locally_invalid(args)
        if invalid:
            assert result.failure_type in ("InvalidSpec", "InvalidArguments"), (result, shown)
            first_problem = result.failure_message.split(": ", 1)[1]
            assert ": " in first_problem, (result.failure_message, shown)  # names a field
        else:
            assert result.failure_type not in ("InvalidSpec", "InvalidArguments"), (result, shown)
