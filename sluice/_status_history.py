"""The lower half of ``sluice status``'s view: the checks (the last verification, the analysis)
and what happened (refused signals, the last events, warnings). Pure, like
:mod:`sluice.status_view`, which puts it together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from workflows.judge import format_value

__all__ = [
    "SHOWN_EVENTS",
    "SHOWN_REFUSALS",
    "analysis",
    "colon",
    "events",
    "format_time",
    "notes",
    "refused_signals",
    "verification",
]

SHOWN_EVENTS = 8
SHOWN_REFUSALS = 3


# --- checks: the served split and the metrics ----------------------------------------------


def verification(status: Mapping[str, Any]) -> RenderableType | None:
    """The last sampling check: served counts against the expected split, p-value, verdict."""
    verifications: Sequence[Mapping[str, Any]] = status.get("verifications") or []
    if not verifications:
        return None
    last = verifications[-1]
    result = last.get("result") or {}
    expected = result.get("expected") or {}
    text = Text.assemble(
        ("last verification", "bold"), f"  step {last.get('step')}  {format_time(last.get('at'))}  "
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


def analysis(status: Mapping[str, Any], limits: Mapping[str, str]) -> RenderableType | None:
    """Per metric: phase, last value, limit, and its measurements counted by verdict."""
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
    notes = [
        Text(f"  {m['message']}", style="dim")
        for m in metrics
        if m.get("phase") != "Running" and m.get("message")
    ]
    notes += [Text(f"  {line}", style="dim") for line in _sequential_evidence(metrics)]
    return Group(table, *notes) if notes else table


def _sequential_evidence(metrics: Sequence[Mapping[str, Any]]) -> list[str]:
    """A ``sequential`` metric's evidence so far and the counts behind it, one line per metric."""
    lines = []
    for metric in metrics:
        evidence = next(
            (m["sequential"] for m in reversed(metric.get("measurements") or []) if m.get("sequential")),
            None,
        )
        if evidence is None:
            continue
        counts = []
        for version in ("canary", "stable"):
            errors, requests = evidence.get(f"{version}Errors", 0), evidence.get(f"{version}Requests", 0)
            share = f" ({errors / requests:.2%})" if requests else ""
            counts.append(f"{version} {errors:g}/{requests:g} errors{share}")
        lines.append(
            f"{metric.get('name')}: evidence {evidence.get('eValue', 0):.4g} of "
            f"{evidence.get('threshold', 0):g} over {evidence.get('intervals', 0)} intervals; "
            + ", ".join(counts)
        )
    return lines


def _limit_from(measurement: Mapping[str, Any] | None) -> str:
    """A threshold as the judge wrote it into a measurement (``0.01 within max 0.05``)."""
    message = str((measurement or {}).get("message", ""))
    for marker in (" within ", " > ", " < "):
        if marker in message:
            return message.split(marker, 1)[1]
    return "?"


# --- what happened ---------------------------------------------------------------------


def refused_signals(status: Mapping[str, Any]) -> RenderableType | None:
    """How many signals were refused, and the newest with their reasons."""
    refused = [e for e in status.get("events") or [] if e.get("event") == "signalRefused"]
    total = (status.get("eventCounts") or {}).get("signalRefused", len(refused))
    if not total:
        return None
    lines: list[RenderableType] = [Text(f"refused signals: {total} (not applied)", style="bold red")]
    for event in refused[-SHOWN_REFUSALS:]:
        lines.append(Text(f"  {format_time(event.get('at'))}  {_describe_event(event)}", style="red"))
    return Group(*lines)


def events(status: Mapping[str, Any]) -> RenderableType | None:
    """The last events, a refused signal in red."""
    events: Sequence[Mapping[str, Any]] = status.get("events") or []
    if not events:
        return None
    table = Table.grid(padding=(0, 1))
    for _ in range(3):
        table.add_column()
    for event in events[-SHOWN_EVENTS:]:
        refused = event.get("event") == "signalRefused"
        table.add_row(
            Text(format_time(event.get("at")), style="dim"),
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


def notes(status: Mapping[str, Any]) -> RenderableType | None:
    """The router's warnings, and what removeOld did to the old workload."""
    lines = [Text(f"warning: {warning}", style="yellow") for warning in status.get("warnings") or []]
    old = status.get("oldWorkload") or {}
    if old.get("error"):
        lines.append(Text(f"old workload NOT retired: {old['error']}", style="bold red"))
    elif old.get("message"):
        lines.append(Text(f"old workload: {old['message']}"))
    return Group(*lines) if lines else None


# --- small helpers ------------------------------------------------------------------------


def format_time(value: Any) -> str:
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


def colon(text: Any) -> str:
    """``": text"``, or nothing for no text."""
    return f": {text}" if text else ""
