"""What ``sluice status`` draws: the ``status`` query's JSON in, a rich renderable out.

Pure (no I/O, no clock): the CLI and ``--watch`` hand in the status and print what comes back;
the tests render it on a recording console. Everything a sender wrote (``by``, comments, reasons)
goes into :class:`~rich.text.Text` as plain text, so it can never restyle or hide a line.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from sluice._status_history import analysis, colon, events, format_time, notes, refused_signals, verification

__all__ = ["BAR_WIDTH", "go_on_commands", "phase_reason", "render_status", "step_mark"]

BAR_WIDTH = 30
FAILED_PHASES = frozenset({"RollingBack", "RolledBack", "Failed"})
PHASE_STYLES = {
    "Succeeded": "bold green",
    "RolledBack": "bold red",
    "RollingBack": "bold red",
    "Failed": "bold red",
    "Paused": "bold yellow",
    "WaitingForApproval": "bold magenta",
    "WaitingForWindow": "bold blue",
}
MARKS = {
    "done": ("✓", "green"),
    "running": ("▶", "bold cyan"),
    "pending": ("·", "dim"),
    "skipped": ("↷", "yellow"),
    "failed": ("✗", "bold red"),
}


def render_status(
    status: Mapping[str, Any], *, by: str = "NAME", limits: Mapping[str, str] | None = None
) -> RenderableType:
    """The whole view of one rollout. ``by`` goes into the commands it suggests (``--by``);
    ``limits`` names each metric's thresholds (from the spec; else read from the measurements)."""
    parts: list[RenderableType] = [_header(status), _phase_line(status), _weights_line(status), Text()]
    parts.append(_plan(status))
    for section in (
        _waiting(status, by),
        _approvals(status),
        verification(status),
        analysis(status, limits or {}),
        refused_signals(status),
        events(status),
        notes(status),
    ):
        if section is not None:
            parts += [Text(), section]
    return Group(*parts)


# --- the top: who, what phase and why, where traffic is ----------------------------------


def _header(status: Mapping[str, Any]) -> Text:
    text = Text.assemble((str(status.get("service", "?")), "bold"), "  ", str(status.get("rolloutId", "")))
    if status.get("namespace"):
        text.append(f"  (namespace {status['namespace']})", style="dim")
    if status.get("requestedBy"):
        text.append(f"  requested by {status['requestedBy']}")
    if status.get("startedAt"):
        text.append(f"  started {format_time(status['startedAt'])}", style="dim")
    if (status.get("runs") or 1) > 1:
        text.append(f"  {status['runs']} workflow runs", style="dim")
    return text


def _phase_line(status: Mapping[str, Any]) -> Text:
    phase = str(status.get("phase", "?"))
    text = Text.assemble("phase  ", (phase, PHASE_STYLES.get(phase, "bold cyan")))
    text.append(f"  at step {status.get('currentStep', 0)}")
    reason = phase_reason(status)
    if reason:
        text.append(f"  {reason}")
    return text


def phase_reason(status: Mapping[str, Any]) -> str:
    """Why the rollout is where it is, in one line: who paused it and why, the drift found, the
    window it waits for, the failure it rolled back for."""
    phase = status.get("phase")
    waiting = status.get("waitingFor") or {}
    if phase in FAILED_PHASES or phase == "Succeeded":
        kind = status.get("errorType")
        message = str(status.get("message") or "")
        return f"{kind}: {message}" if kind else message
    conditions = status.get("pauseConditions") or []
    if phase == "Paused" and conditions:
        return "; ".join(_pause_condition(condition) for condition in conditions)
    if waiting.get("kind") == "window":
        until = f" until {format_time(waiting['until'])}" if waiting.get("until") else ""
        return f"waiting for a deployment window{until}" + colon(waiting.get("reason"))
    if waiting.get("kind") == "approval":
        return _gate_progress(status, waiting)
    if waiting.get("kind") == "bake":
        until = f" until {format_time(waiting['until'])}" if waiting.get("until") else ""
        return f"baking{until}" + colon(waiting.get("reason"))
    if waiting:
        return f"waiting for {waiting.get('kind')}" + colon(waiting.get("reason"))
    return ""


def _pause_condition(condition: Mapping[str, Any]) -> str:
    reason, by, message = condition.get("reason"), condition.get("by", ""), condition.get("message", "")
    since = f" (since {format_time(condition['since'])})" if condition.get("since") else ""
    if reason == "Drift":
        return f"drift: {message}{since}"
    if reason == "InconclusiveAnalysis":
        return f"analysis inconclusive: {message}{since}"
    if reason == "ApprovalTimedOut":
        return f"approval timed out: {message}{since}"
    return f"paused by {by}" + colon(message) + since


def _gate_progress(status: Mapping[str, Any], waiting: Mapping[str, Any]) -> str:
    text = f"waiting for approval of step {waiting.get('step')}"
    if waiting.get("until"):
        text += f" until {format_time(waiting['until'])}"
    still_needed = waiting.get("stillNeeded")
    if still_needed and _multi_approver(status, waiting):
        approved = ", ".join(waiting.get("approvedBy") or []) or "nobody yet"
        text += f" (approved by {approved}; {still_needed} more needed)"
    return text


def _multi_approver(status: Mapping[str, Any], waiting: Mapping[str, Any]) -> bool:
    """A gate that needs more than one approver, or has some approvals already: worth counting."""
    if waiting.get("approvedBy"):
        return True
    steps = {step.get("index"): step for step in status.get("steps") or []}
    return (steps.get(waiting.get("step"), {}).get("approvalsRequired") or 1) > 1


def _weights_line(status: Mapping[str, Any]) -> Text:
    weights = status.get("weights")
    if not weights:
        return Text("weights  not read yet", style="dim")
    stable, canary = int(weights.get("stable", 0)), int(weights.get("canary", 0))
    names = _destination_names(status)
    filled = round(BAR_WIDTH * canary / 100)
    return Text.assemble(
        "weights  [",
        ("█" * filled, "magenta"),
        ("░" * (BAR_WIDTH - filled), "blue"),
        "]  ",
        (f"{stable}% stable", "blue"),
        f"{names[0]} / ",
        (f"{canary}% canary", "magenta"),
        names[1],
    )


def _destination_names(status: Mapping[str, Any]) -> tuple[str, str]:
    for event in status.get("events") or []:
        if event.get("event") == "rolloutStarted":
            detail = event.get("detail") or {}
            return f" ({detail.get('stable', '?')})", f" ({detail.get('canary', '?')})"
    return "", ""


# --- the plan ---------------------------------------------------------------------------


def step_mark(status: Mapping[str, Any], step: Mapping[str, Any]) -> str:
    """``done``, ``running`` (the current step), ``pending``, ``skipped`` or ``failed`` (the step
    a failed rollout was at)."""
    state = str(step.get("state", "pending"))
    if state == "running" and status.get("phase") in FAILED_PHASES:
        return "failed"
    return state if state in MARKS else "pending"


def _plan(status: Mapping[str, Any]) -> RenderableType:
    steps: Sequence[Mapping[str, Any]] = status.get("steps") or []
    if not steps:
        return Text("plan   none (the spec was not valid)", style="dim")
    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right")
    table.add_column()
    table.add_column()
    table.add_column()
    table.add_column(style="dim")
    for step in steps:
        mark = step_mark(status, step)
        symbol, style = MARKS[mark]
        table.add_row(
            Text("plan" if step.get("index") == 0 else ""),
            Text(symbol, style=style),
            Text(f"{step.get('index')}", style="bold" if mark == "running" else ""),
            Text(_step_description(step), style="bold" if mark == "running" else ""),
            Text(_step_note(step, mark)),
        )
    return table


def _step_description(step: Mapping[str, Any]) -> str:
    description = str(step.get("description", step.get("kind", "")))
    if step.get("kind") == "removeOld" and not description.startswith("removeOld"):
        description = f"removeOld: {description}"
    return description


def _step_note(step: Mapping[str, Any], mark: str) -> str:
    notes = [] if mark == "pending" else [mark]
    required = step.get("approvalsRequired")
    approved = step.get("approvedBy") or []
    if required and required > 1:
        notes.append(
            f"{len(approved)} of {required} approvals" + (f": {', '.join(approved)}" if approved else "")
        )
    elif approved:
        notes.append(f"approved by {', '.join(approved)}")
    return "  ".join(notes)


# --- what it waits for, and how to go on --------------------------------------------------


def go_on_commands(status: Mapping[str, Any], by: str = "NAME") -> list[str]:
    """The ``sluice`` commands that end the current wait (empty when nothing a person sends
    does, or the rollout has ended)."""
    if status.get("phase") in FAILED_PHASES or status.get("phase") == "Succeeded":
        return []
    rollout = shlex.quote(str(status.get("rolloutId", "ID")))
    who = f"--by {shlex.quote(by)}"
    waiting = status.get("waitingFor") or {}
    commands = []
    if status.get("pauseConditions"):
        commands.append(f"sluice resume {rollout} {who}")
    kind = waiting.get("kind")
    if kind == "approval":
        commands.append(f"sluice approve {rollout} --step {waiting.get('step')} {who}")
    elif kind == "resume" and not commands:
        commands.append(f"sluice resume {rollout} {who}")
    elif kind == "bake":
        commands.append(f"sluice promote {rollout} {who}")
    elif kind == "window":
        commands.append(f"sluice promote {rollout} --ignore-window {who}")
    return commands


def _waiting(status: Mapping[str, Any], by: str) -> RenderableType | None:
    waiting = status.get("waitingFor")
    commands = go_on_commands(status, by)
    if not waiting and not commands:
        return None
    lines: list[RenderableType] = []
    if waiting:
        text = Text.assemble(("waiting for ", "bold"), (str(waiting.get("kind")), "bold"))
        text.append(f" at step {waiting.get('step')} since {format_time(waiting.get('since'))}")
        if waiting.get("until"):
            text.append(f", until {format_time(waiting['until'])}")
        if not (waiting.get("kind") == "resume" and status.get("pauseConditions")):  # said in the phase line
            text.append(colon(waiting.get("reason")))
        lines.append(text)
        if waiting.get("kind") in ("window", "bake") and waiting.get("until"):
            lines.append(Text("  goes on by itself then; to go on now:", style="dim"))
        elif waiting.get("hint") and not commands:
            lines.append(Text(f"  {waiting['hint']}", style="dim"))
    for command in commands:
        lines.append(Text.assemble("  ", ("$ ", "dim"), (command, "bold")))
    return Group(*lines)


def _approvals(status: Mapping[str, Any]) -> RenderableType | None:
    approvals: Sequence[Mapping[str, Any]] = status.get("approvals") or []
    waiting = status.get("waitingFor") or {}
    if not approvals and waiting.get("kind") != "approval":
        return None
    lines: list[RenderableType] = [Text("approvals", style="bold")]
    for approval in approvals:
        line = Text(
            f"  step {approval.get('step')}  {approval.get('by')}  {format_time(approval.get('at'))}  "
            f"({approval.get('kind', 'approve')} by {approval.get('via', 'update')})"
        )
        if approval.get("comment"):
            line.append(f"  {approval['comment']!r}", style="dim")
        lines.append(line)
    if not approvals:
        lines.append(Text("  none yet", style="dim"))
    if waiting.get("kind") == "approval" and waiting.get("stillNeeded") and _multi_approver(status, waiting):
        approved = ", ".join(waiting.get("approvedBy") or []) or "nobody yet"
        lines.append(
            Text(
                f"  step {waiting.get('step')}: approved by {approved}; "
                f"still needed: {waiting['stillNeeded']} more distinct approver(s)",
                style="magenta",
            )
        )
    return Group(*lines)
