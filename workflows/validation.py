"""Spec errors as users read them: one ``path: reason`` line per problem, the way they wrote the
keys (``steps[0].setWeight: must be 0..100, got 150``), never more than a screenful."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from workflows.routers import ROUTER_KINDS

__all__ = [
    "MAX_PROBLEMS",
    "MAX_PROBLEM_LENGTH",
    "ArgumentsError",
    "SpecError",
    "bounded_problems",
    "validation_problems",
]


class SpecError(ValueError):
    """A rollout spec that does not validate; ``problems`` holds one ``path: reason`` per line."""

    error_type = "InvalidSpec"
    """The type of the ``ApplicationError`` the workflow fails with."""
    summary = "invalid rollout spec"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{self.summary}: " + "; ".join(problems))


class ArgumentsError(SpecError):
    """The workflow was started with arguments other than a spec (and the state it carries)."""

    error_type = "InvalidArguments"
    summary = "invalid workflow arguments"


def _format_location(loc: tuple[int | str, ...], union_tags: set[str]) -> str:
    path = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in union_tags and index > 0 and loc[index - 1] == "router":
            continue  # pydantic puts the discriminator's value in the path; users never wrote it
        else:
            path += f".{part}" if path else str(part)
    return path


def _format_error(error: Any) -> list[str]:
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    message = str(error.get("msg", ""))
    value = error.get("input")
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if message.startswith("Assertion failed, "):
        message = message[len("Assertion failed, ") :]
    path = _format_location(loc, set(ROUTER_KINDS))
    if kind == "extra_forbidden":
        if len(loc) == 3 and loc[0] == "steps" and isinstance(loc[1], int):
            return [f"{path}: unknown step kind (expected one of setWeight, approval, pause, removeOld)"]
        return [f"{path}: unknown key"]
    if kind == "missing":
        return [f"{path}: required"]
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        return [f"{path}.kind: unknown router kind {tag!r} (expected one of {', '.join(ROUTER_KINDS)})"]
    if kind == "union_tag_not_found":
        return [f"{path}.kind: required (one of {', '.join(ROUTER_KINDS)})"]
    lines = message.split("\n")
    if len(lines) > 1:  # one validator reporting several problems with their own paths
        return lines
    if "got" not in message and repr(value) not in message and not isinstance(value, dict | list):
        message = f"{message}, got {value!r}"
    return [f"{path}: {message}" if path else message]


MAX_PROBLEMS = 20
"""Problems reported at most, each cut to :data:`MAX_PROBLEM_LENGTH` characters: the message is
stored in history, and a spec of a million bad steps must not make it too large to store."""
MAX_PROBLEM_LENGTH = 300


def validation_problems(exc: ValidationError) -> list[str]:
    """pydantic's errors as ``path: reason`` lines, the way users wrote the keys."""
    problems: list[str] = []
    for error in exc.errors():
        problems.extend(_format_error(error))
    return bounded_problems(problems)


def bounded_problems(problems: list[str]) -> list[str]:
    """The first :data:`MAX_PROBLEMS` problems, each at most :data:`MAX_PROBLEM_LENGTH` long."""
    shown = [
        line if len(line) <= MAX_PROBLEM_LENGTH else line[: MAX_PROBLEM_LENGTH - 3] + "..."
        for line in problems[:MAX_PROBLEMS]
    ]
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS} more problems")
    return shown
