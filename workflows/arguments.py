"""The ``Rollout`` workflow's arguments, decoded by the workflow itself so every shape fails typed.

Temporal decodes a named workflow's arguments before any workflow code runs; an argument it cannot
decode (an unknown encoding, JSON nested deeper than the JSON parser allows, one argument too
many) fails the workflow task, which is retried forever while the workflow shows Running. The
workflow therefore receives its arguments as raw payloads and decodes them here, where every
problem becomes a :class:`SpecError` (``InvalidSpec``: the spec) or an :class:`ArgumentsError`
(``InvalidArguments``: the argument count, the carried state).

The arguments are ``[spec]`` for a new rollout and ``[spec, carried]`` when it continues as new.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from temporalio.common import RawValue
from temporalio.converter import PayloadConverter

from workflows._base import _Model
from workflows.carried import RolloutState
from workflows.spec import RolloutSpec
from workflows.state import plan_view
from workflows.validation import ArgumentsError, SpecError, bounded_problems, validation_problems

__all__ = ["MAX_NESTING", "decode_carried", "decode_spec"]

MAX_NESTING = 200
"""How deep JSON may nest: about what pydantic's JSON parser (the data converter's) accepts."""


class _Carried(_Model):
    carried: RolloutState


def decode_spec(args: Sequence[RawValue], converter: PayloadConverter) -> Any:
    """The first argument, decoded (not yet validated); raise when it or the count is wrong."""
    if not 1 <= len(args) <= 2:
        got = "none" if not args else f"{len(args)}"
        raise ArgumentsError(
            [
                "arguments: Rollout takes one argument, the rollout spec (a second one is the "
                f"state it carries when it continues as new), got {got}"
            ]
        )
    return _decode(args[0], "spec", converter, SpecError)


def decode_carried(
    args: Sequence[RawValue], converter: PayloadConverter, spec: RolloutSpec
) -> RolloutState | None:
    """The state carried across continue-as-new (the second argument) for ``spec``'s plan, None
    for a new rollout."""
    if len(args) < 2:
        return None
    value = _decode(args[1], "carried", converter, ArgumentsError)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ArgumentsError(
            [f"carried: must be the state a rollout carries into its next run, got {type(value).__name__}"]
        )
    try:
        state = _Carried.model_validate({"carried": value}).carried  # paths start with "carried"
    except ValidationError as error:
        raise ArgumentsError(validation_problems(error)) from None
    except (ArithmeticError, RecursionError, TypeError, ValueError) as error:
        raise ArgumentsError(bounded_problems([f"carried: cannot be read ({error})"])) from None
    problems = _mismatches(state, spec)
    if problems:
        raise ArgumentsError(bounded_problems(problems))
    return state


def _mismatches(state: RolloutState, spec: RolloutSpec) -> list[str]:
    """Where a carried state does not fit the spec's plan. The plan indexes into it by step and
    metric; a state from another spec (or made up) would fail the workflow task on every retry."""
    problems: list[str] = []
    status, last = state.status, len(spec.steps)
    planned = [view.kind for view in plan_view(spec)]
    carried = [view.kind for view in status.steps]
    if carried != planned:
        shown = ", ".join(carried[:10]) + (", ..." if len(carried) > 10 else "")
        problems.append(
            f"carried.status.steps: must be the spec's plan ({', '.join(planned)}), got [{shown}]"
        )
    if not 1 <= status.current_step <= last:
        problems.append(
            f"carried.status.currentStep: must be a step of the plan, 1..{last}, got {status.current_step}"
        )
    if status.waiting_for is not None and not 1 <= status.waiting_for.step <= last:
        problems.append(f"carried.status.waitingFor.step: must be a step of the plan, 1..{last}")
    metrics = {metric.name for metric in spec.analysis.metrics} if spec.analysis else set()
    unknown = sorted(set(state.analysis_state.metrics) - metrics)
    if unknown:
        problems.append(f"carried.analysisState.metrics: the spec has no metric {unknown[0]!r}")
    return problems


def _decode(raw: RawValue, name: str, converter: PayloadConverter, error: type[SpecError]) -> Any:
    payload = raw.payload
    encoding = payload.metadata.get("encoding", b"").decode(errors="replace")
    try:
        return converter.from_payload(payload)
    except Exception as exc:  # whatever the converter raises, the input is what is wrong
        if isinstance(exc, KeyError) and "Unknown payload encoding" in str(exc):  # Temporal's words
            shown = encoding if len(encoding) <= 60 else encoding[:57] + "..."
            problem = f"{name}: unknown payload encoding {shown!r} (send JSON: encoding json/plain)"
            raise error([problem]) from None
        deep = _too_deep(payload.data, name) if encoding == "json/plain" else None
        if deep is not None:
            raise error(bounded_problems([f"{deep}: nested more than {MAX_NESTING} levels deep"])) from None
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc).strip()
        problem = f"{name}: cannot be decoded as {encoding} ({reason or type(exc).__name__})"
        raise error(bounded_problems([problem.splitlines()[0]])) from None


def _too_deep(data: bytes, name: str) -> str | None:
    """The path of the field that nests too deeply, when the standard parser can read the JSON."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_NESTING:
            return path or name
        if isinstance(node, dict):
            for key, child in node.items():
                named = path if len(path) > 80 else (f"{path}.{key}" if path else str(key))
                stack.append((child, depth + 1, named))
        elif isinstance(node, list):
            stack.extend((child, depth + 1, path or name) for child in node)
    return None
