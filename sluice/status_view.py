"""What ``sluice status`` draws: the ``status`` query's JSON in, a rich renderable out.

Pure (no I/O, no clock): the CLI and ``--watch`` hand in the status and print what comes back;
the tests render it on a recording console. Everything a sender wrote (``by``, comments, reasons)
goes into :class:`~rich.text.Text` as plain text, so it can never restyle or hide a line.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from workflows.judge import format_value

__all__ = ["BAR_WIDTH", "go_on_commands", "phase_reason", "render_status", "step_mark"]

BAR_WIDTH = 30
SHOWN_EVENTS = 8
SHOWN_REFUSALS = 3
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
        _verification(status),
        _analysis(status, limits or {}),
        _refused_signals(status),
        _events(status),
        _notes(status),
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
        text.append(f"  started {_time(status['startedAt'])}", style="dim")
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
        until = f" until {_time(waiting['until'])}" if waiting.get("until") else ""
        return f"waiting for a deployment window{until}" + _colon(waiting.get("reason"))
    if waiting.get("kind") == "approval":
        return _gate_progress(status, waiting)
    if waiting.get("kind") == "bake":
        until = f" until {_time(waiting['until'])}" if waiting.get("until") else ""
        return f"baking{until}" + _colon(waiting.get("reason"))
    if waiting:
        return f"waiting for {waiting.get('kind')}" + _colon(waiting.get("reason"))
    return ""


def _pause_condition(condition: Mapping[str, Any]) -> str:
    reason, by, message = condition.get("reason"), condition.get("by", ""), condition.get("message", "")
    since = f" (since {_time(condition['since'])})" if condition.get("since") else ""
    if reason == "Drift":
        return f"drift: {message}{since}"
    if reason == "InconclusiveAnalysis":
        return f"analysis inconclusive: {message}{since}"
    if reason == "ApprovalTimedOut":
        return f"approval timed out: {message}{since}"
    return f"paused by {by}" + _colon(message) + since


def _gate_progress(status: Mapping[str, Any], waiting: Mapping[str, Any]) -> str:
    text = f"waiting for approval of step {waiting.get('step')}"
    if waiting.get("until"):
        text += f" until {_time(waiting['until'])}"
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
        text.append(f" at step {waiting.get('step')} since {_time(waiting.get('since'))}")
        if waiting.get("until"):
            text.append(f", until {_time(waiting['until'])}")
        if not (waiting.get("kind") == "resume" and status.get("pauseConditions")):  # said in the phase line
            text.append(_colon(waiting.get("reason")))
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
            f"  step {approval.get('step')}  {approval.get('by')}  {_time(approval.get('at'))}  "
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


# --- checks: the served split and the metrics ----------------------------------------------


def _verification(status: Mapping[str, Any]) -> RenderableType | None:
    verifications: Sequence[Mapping[str, Any]] = status.get("verifications") or []
    if not verifications:
        return None
    last = verifications[-1]
    result = last.get("result") or {}
    expected = result.get("expected") or {}
    text = Text.assemble(
        ("last verification", "bold"), f"  step {last.get('step')}  {_time(last.get('at'))}  "
    )
    text.append(
        f"served {result.get('stable', 0)} stable / {result.get('canary', 0)} canary "
        f"of {result.get('samples', 0)} (expected {expected.get('stable')}/{expected.get('canary')})"
    )
    extra = [
        f"{result[key]} {label}"
        for key, label in (
            ("otherAnswers", "other"),
            ("unclassified", "unclassified"),
            ("errors", "errors"),
        )
        if result.get(key)
    ]
    if extra:
        text.append(f", {', '.join(extra)}")
    if result.get("pValue") is not None:
        text.append(f"  p={result['pValue']:.3g}")
    text.append(
        "  ok" if result.get("passed") else "  FAILED", style="green" if result.get("passed") else "bold red"
    )
    if result.get("reason") and not result.get("passed"):
        text.append(f": {result['reason']}")
    return text


def _analysis(status: Mapping[str, Any], limits: Mapping[str, str]) -> RenderableType | None:
    metrics: Sequence[Mapping[str, Any]] = status.get("analysis") or []
    if not metrics:
        return None
    table = Table(title="analysis", title_justify="left", title_style="bold", box=None, padding=(0, 1))
    for column in ("metric", "phase", "last value", "limit", "✓ ok", "✗ failed", "? no data", "! error"):
        table.add_column(column, justify="right" if column[0] in "✓✗?!" else "left")
    for metric in metrics:
        measurements = metric.get("measurements") or []
        last = measurements[-1] if measurements else None
        phase = str(metric.get("phase", "Running"))
        table.add_row(
            Text(str(metric.get("name"))),
            Text(
                phase,
                style="red"
                if phase in ("Failed", "Error")
                else ("yellow" if phase == "Inconclusive" else ""),
            ),
            Text(format_value(last.get("value")) if last else "-"),
            Text(limits.get(str(metric.get("name"))) or _limit_from(last)),
            str(metric.get("successful", 0)),
            str(metric.get("failed", 0)),
            str(metric.get("inconclusive", 0)),
            str(metric.get("error", 0)),
        )
    if any(m.get("phase") != "Running" and m.get("message") for m in metrics):
        notes = [
            Text(f"  {m['message']}", style="dim")
            for m in metrics
            if m.get("phase") != "Running" and m.get("message")
        ]
        return Group(table, *notes)
    return table


def _limit_from(measurement: Mapping[str, Any] | None) -> str:
    """A threshold as the judge wrote it into a measurement (``0.01 within max 0.05``)."""
    message = str((measurement or {}).get("message", ""))
    for marker in (" within ", " > ", " < "):
        if marker in message:
            return message.split(marker, 1)[1]
    return "?"


# --- what happened ---------------------------------------------------------------------


def _refused_signals(status: Mapping[str, Any]) -> RenderableType | None:
    refused = [e for e in status.get("events") or [] if e.get("event") == "signalRefused"]
    total = (status.get("eventCounts") or {}).get("signalRefused", len(refused))
    if not total:
        return None
    lines: list[RenderableType] = [Text(f"refused signals: {total} (not applied)", style="bold red")]
    for event in refused[-SHOWN_REFUSALS:]:
        lines.append(Text(f"  {_time(event.get('at'))}  {_describe_event(event)}", style="red"))
    return Group(*lines)


def _events(status: Mapping[str, Any]) -> RenderableType | None:
    events: Sequence[Mapping[str, Any]] = status.get("events") or []
    if not events:
        return None
    table = Table.grid(padding=(0, 1))
    for _ in range(3):
        table.add_column()
    for event in events[-SHOWN_EVENTS:]:
        refused = event.get("event") == "signalRefused"
        table.add_row(
            Text(_time(event.get("at")), style="dim"),
            Text(f"step {event.get('step')}", style="dim"),
            Text(_describe_event(event), style="red" if refused else ""),
        )
    total = sum((status.get("eventCounts") or {}).values()) or len(events)
    return Group(Text(f"last events ({min(len(events), SHOWN_EVENTS)} of {total})", style="bold"), table)


def _describe_event(event: Mapping[str, Any]) -> str:
    name, by, detail = str(event.get("event")), str(event.get("by") or ""), dict(event.get("detail") or {})
    if name == "signalRefused":
        sender = f" from {by}" if by else ""
        return f"signal {detail.get('signal', '?')}{sender} refused: {detail.get('reason', '')}"
    if name == "weightsSet" and "canary" in detail:
        return f"weights set to {detail.get('stable')}/{detail.get('canary')}"
    text = name + (f" by {by}" if by else "")
    shown = {k: v for k, v in detail.items() if v not in (None, "", [], {})}
    if shown:
        text += ": " + ", ".join(f"{key}={value}" for key, value in shown.items())
    return text


def _notes(status: Mapping[str, Any]) -> RenderableType | None:
    lines = [Text(f"warning: {warning}", style="yellow") for warning in status.get("warnings") or []]
    old = status.get("oldWorkload") or {}
    if old.get("error"):
        lines.append(Text(f"old workload NOT retired: {old['error']}", style="bold red"))
    elif old.get("message"):
        lines.append(Text(f"old workload: {old['message']}"))
    return Group(*lines) if lines else None


# --- small helpers ------------------------------------------------------------------------


def _time(value: Any) -> str:
    """``2026-12-05 04:44:12 UTC`` from the JSON's ISO time (as is when it is not one)."""
    if not value:
        return "?"
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    offset = moment.utcoffset()
    zone = "UTC" if offset is not None and not offset else moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M:%S} {zone}".strip()


def _colon(text: Any) -> str:
    return f": {text}" if text else ""
