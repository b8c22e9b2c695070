"""``sluice status --watch``: poll the ``status`` query, redraw on change, end with the rollout.

Exit code: 0 when the rollout succeeded, 1 when it rolled back, failed, or its workflow ended
otherwise (terminated, timed out).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

__all__ = ["POLL_INTERVAL", "Snapshot", "take_snapshot", "watch_rollout"]

POLL_INTERVAL = timedelta(seconds=1)
QUERY_TIMEOUT = timedelta(seconds=5)


@dataclass(frozen=True)
class Snapshot:
    """One poll: the status (None when the query did not answer), and how the workflow stands."""

    status: dict[str, Any] | None
    closed: str | None = None
    """The workflow's close status (``COMPLETED``, ``TERMINATED``, ...), None while it runs."""
    problem: str = ""
    """Why there is no status (no worker answers, ...)."""

    def exit_code(self) -> int | None:
        """0 on success, 1 on any other end, None while the rollout goes on."""
        phase = (self.status or {}).get("phase")
        if phase == "Succeeded":
            return 0
        if phase in ("RolledBack", "Failed"):
            return 1
        if self.closed is not None:
            return 0 if self.closed == "COMPLETED" else 1
        return None

    def key(self) -> str:
        """What a redraw depends on."""
        return json.dumps([self.status, self.closed, self.problem], sort_keys=True, default=str)


async def take_snapshot(client: Client, rollout_id: str) -> Snapshot:
    """Describe the workflow (a terminated rollout's status never ends), then read its status:
    an ended rollout's from its result or failure (what the query would answer, without waiting
    for a worker), a running one's from the ``status`` query."""
    handle = client.get_workflow_handle(rollout_id)
    description = await handle.describe()
    running = description.status in (None, WorkflowExecutionStatus.RUNNING)
    closed = None if running else description.status.name  # type: ignore[union-attr]
    status = None if running else await _final_status(handle)
    problem = ""
    if status is None:  # running, or ended without a status (terminated, timed out)
        try:
            status = await handle.query("status", rpc_timeout=QUERY_TIMEOUT)
        except Exception as error:  # no worker, a worker too old: keep watching, say why
            problem = f"the status query did not answer ({error}); is a worker running?"
    return Snapshot(status, closed, problem)


async def _final_status(handle: WorkflowHandle[Any, Any]) -> dict[str, Any] | None:
    """An ended rollout's status without a worker: its result, or its failure's details."""
    try:
        result = await handle.result(follow_runs=False)
    except WorkflowFailureError as error:
        cause = error.cause
        details = cause.details if isinstance(cause, ApplicationError) else ()
        result = details[0] if details else None
    except Exception:  # terminated, timed out, cancelled without details: nothing to show
        return None
    return result if isinstance(result, dict) and "rolloutId" in result else None


async def watch_rollout(
    client: Client,
    rollout_id: str,
    console: Console,
    render: Callable[[dict[str, Any]], RenderableType],
    *,
    as_json: bool = False,
    interval: timedelta = POLL_INTERVAL,
) -> int:
    """Redraw ``render(status)`` whenever the status changes, until the rollout ends; the exit
    code. With ``as_json``, one JSON line per change instead."""
    shown = ""
    live = Live(console=console, auto_refresh=False, transient=True) if console.is_terminal else None
    last: Snapshot | None = None
    try:
        if live is not None and not as_json:
            live.start()
        while True:
            snapshot = await take_snapshot(client, rollout_id)
            code, last = snapshot.exit_code(), snapshot
            if snapshot.key() != shown:
                shown = snapshot.key()
                if as_json:
                    if snapshot.status is not None:
                        print(json.dumps(snapshot.status), flush=True)
                elif code is None:
                    view = _view(snapshot, render, interval)
                    if live is not None:
                        live.update(view, refresh=True)
                    else:
                        console.print(view)
                        console.print()
            if code is not None:
                break
            await asyncio.sleep(interval.total_seconds())
    finally:
        if live is not None and live.is_started:
            live.stop()
    if not as_json and last is not None:
        console.print(_view(last, render, interval, ended=True))
    return code


def _view(
    snapshot: Snapshot,
    render: Callable[[dict[str, Any]], RenderableType],
    interval: timedelta,
    *,
    ended: bool = False,
) -> RenderableType:
    parts: list[RenderableType] = []
    if snapshot.status is not None:
        parts.append(render(snapshot.status))
    if snapshot.problem:
        parts.append(Text(snapshot.problem, style="yellow"))
    parts.append(Text())
    if ended:
        phase = (snapshot.status or {}).get("phase") or snapshot.closed
        ending = (
            f"the workflow ended {snapshot.closed}"
            if snapshot.closed and phase not in ("Succeeded", "RolledBack", "Failed")
            else f"the rollout ended: {phase}"
        )
        parts.append(Text(ending, style="bold green" if snapshot.exit_code() == 0 else "bold red"))
    else:
        seconds = f"{interval.total_seconds():g}s"
        parts.append(
            Text(f"watching (every {seconds}); Ctrl-C stops watching, the rollout goes on", style="dim")
        )
    return Group(*parts)
