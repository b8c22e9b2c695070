"""``sluice audit``'s table for people (json and csv are in :mod:`sluice.audit`)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sluice.audit import AuditRow

__all__ = ["print_audit"]


def print_audit(console: Console, rollout: str, runs: int, rows: Sequence[AuditRow]) -> None:
    """One line per action or traffic change; a claim the identity does not back says MISMATCH.

    Everything a sender wrote (``by``, comments, even the identity) is escaped: it is data, and
    must not be able to restyle or hide a line."""
    table = Table(title=escape(f"{rollout}: {len(rows)} actions and traffic changes in {runs} run(s)"))
    for column in ("time (UTC)", "run", "step", "action", "by (claimed)", "identity", "outcome", "weights"):
        table.add_column(column)
    for row in rows:
        identity = escape(row.identity)
        if row.principal:
            identity += escape(f" (authenticated: {row.principal['type']}:{row.principal['name']})")
        if row.mismatch:
            identity += " [bold red]MISMATCH[/bold red]"
        outcome = row.outcome + (f": {row.detail}" if row.detail and row.outcome != "started" else "")
        table.add_row(
            row.time.strftime("%Y-%m-%d %H:%M:%S"),
            str(row.run),
            "" if row.step is None else str(row.step),
            escape(f"{row.action} ({row.via})"),
            escape(row.by),
            identity,
            escape(outcome),
            f"{row.weights['stable']}/{row.weights['canary']}" if row.weights else "",
        )
    console.print(table)
    mismatches = sum(row.mismatch for row in rows)
    if mismatches:
        console.print(
            f"{mismatches} action(s) claim a `by` that the sender's identity does not name "
            "(README: Trusting the identity).",
            highlight=False,
        )
