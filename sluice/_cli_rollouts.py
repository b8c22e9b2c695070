"""The ``sluice`` commands that look at and steer one rollout: ``status`` (``--watch``) and the
actions ``approve``, ``abort``, ``pause``, ``resume``, ``promote`` (always Temporal updates, so
a refusal is answered). :func:`register` adds them to the app."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from sluice._cli_base import (
    Address,
    By,
    CliError,
    Namespace,
    Output,
    OutputFormat,
    RolloutId,
    connect_client,
    default_by,
    make_console,
    print_json,
    run,
)
from sluice.client import metric_limits
from sluice.lookup import AmbiguousRollout, UnknownRollout, resolve_rollout
from sluice.status_view import render_status
from sluice.watch import take_snapshot, watch_rollout

__all__ = ["register"]

console = make_console()
STATUS_AFTER_TIMEOUT = timedelta(seconds=5)

Comment = Annotated[str, typer.Option(metavar="TEXT", help="Recorded with the action.")]
Reason = Annotated[str, typer.Option("--reason", "--comment", metavar="TEXT", help="Why (recorded).")]


async def _resolve(client: Client, rollout: str) -> str:
    try:
        return await resolve_rollout(client, rollout)
    except (UnknownRollout, AmbiguousRollout) as error:
        raise CliError(str(error)) from None
    except RPCError as error:
        raise CliError(f"cannot look up {rollout}: {error.message}") from None


def status(
    rollout: RolloutId,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="Redraw on every change until the rollout ends; exit 0 on success, 1 otherwise.",
        ),
    ] = False,
    output: Output = OutputFormat.text,
    as_json: Annotated[bool, typer.Option("--json", hidden=True, help="Same as --output json.")] = False,
    address: Address = "127.0.0.1:7233",
    namespace: Namespace = "default",
) -> None:
    """Phase and why, the plan, weights, what it waits for and the command to go on, approvals,
    the last verification, the analysis, the last events (refused signals included)."""
    json_output = as_json or output is OutputFormat.json

    async def go() -> int:
        client = await connect_client(address, namespace)
        rollout_id = await _resolve(client, rollout)
        limits = await metric_limits(client, rollout_id)
        by = default_by()

        def render(current: dict[str, Any]) -> Any:
            return render_status(current, by=by, limits=limits)

        if watch:
            return await watch_rollout(client, rollout_id, console, render, as_json=json_output)
        snapshot = await take_snapshot(client, rollout_id)
        if snapshot.status is None:
            raise CliError(f"cannot query {rollout_id}: {snapshot.problem}")
        if json_output:
            print_json(snapshot.status)
        else:
            console.print(render(snapshot.status))
        return 0

    code = run(go())
    if code:
        raise typer.Exit(code)


async def _act(
    address: str, namespace: str, rollout: str, name: str, payload: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """Send the update; return the rollout id, its answer and the status after it (None when the
    query does not answer)."""
    client = await connect_client(address, namespace)
    rollout_id = await _resolve(client, rollout)
    handle = client.get_workflow_handle(rollout_id)
    try:
        result: dict[str, Any] = await handle.execute_update(name, payload)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise CliError(f"{name} refused: {reason}") from None
    except RPCError as error:
        raise CliError(f"{name} failed: {error.message}") from None
    return rollout_id, result, await _status_after(handle)


async def _status_after(handle: WorkflowHandle[Any, Any]) -> dict[str, Any] | None:
    # The update answers from inside the handler, before the rollout moves on; the workflow task
    # that ran it also ran what the rollout did next, so a query now shows where it went.
    try:
        after: dict[str, Any] = await handle.query("status", rpc_timeout=STATUS_AFTER_TIMEOUT)
    except Exception:
        return None
    return after


def _reply(
    rollout: str, name: str, payload: dict[str, Any], output: OutputFormat, address: str, namespace: str
) -> None:
    rollout_id, result, after = run(_act(address, namespace, rollout, name, payload))
    if output is OutputFormat.json:
        print_json({"rolloutId": rollout_id, "result": result, "status": after})
        return
    where = after or result
    weights = (after or {}).get("weights") or {}
    split = f", weights {weights['stable']}/{weights['canary']}" if weights else ""
    console.print(
        f"{result['message']}; now {where['phase']} at step {where['currentStep']}{split}",
        highlight=False,
        markup=False,
    )


def approve(
    rollout: RolloutId,
    step: Annotated[
        int | None, typer.Option(metavar="N", help="Refuse unless the rollout waits at this plan step.")
    ] = None,
    comment: Comment = "",
    by: By = "",
    output: Output = OutputFormat.text,
    address: Address = "127.0.0.1:7233",
    namespace: Namespace = "default",
) -> None:
    """Pass the approval gate the rollout waits at (one approval of a multi-approver gate)."""
    payload: dict[str, Any] = {"by": by or default_by(), "comment": comment}
    if step is not None:
        payload["step"] = step
    _reply(rollout, "approve", payload, output, address, namespace)


def abort(
    rollout: RolloutId,
    reason: Reason = "",
    by: By = "",
    output: Output = OutputFormat.text,
    address: Address = "127.0.0.1:7233",
    namespace: Namespace = "default",
) -> None:
    """Roll back to 100% stable now; the rollout then fails with RolloutAborted."""
    _reply(rollout, "abort", {"by": by or default_by(), "reason": reason}, output, address, namespace)


def pause(
    rollout: RolloutId,
    reason: Reason = "",
    by: By = "",
    output: Output = OutputFormat.text,
    address: Address = "127.0.0.1:7233",
    namespace: Namespace = "default",
) -> None:
    """Hold at the current weights until resume or promote."""
    _reply(rollout, "pause", {"by": by or default_by(), "reason": reason}, output, address, namespace)


def resume(
    rollout: RolloutId,
    comment: Comment = "",
    by: By = "",
    output: Output = OutputFormat.text,
    address: Address = "127.0.0.1:7233",
    namespace: Namespace = "default",
) -> None:
    """Go on after a pause (yours, someone else's, drift, inconclusive analysis)."""
    _reply(rollout, "resume", {"by": by or default_by(), "comment": comment}, output, address, namespace)


def promote(
    rollout: RolloutId,
    full: Annotated[bool, typer.Option("--full", help="Go straight to 100% canary.")] = False,
    ignore_window: Annotated[
        bool,
        typer.Option(
            "--ignore-window", help="Move traffic now although no deployment window is open (once)."
        ),
    ] = False,
    comment: Comment = "",
    by: By = "",
    output: Output = OutputFormat.text,
    address: Address = "127.0.0.1:7233",
    namespace: Namespace = "default",
) -> None:
    """Skip the current wait (a gate, a bake, a pause step); --full goes straight to 100%."""
    payload: dict[str, Any] = {"by": by or default_by(), "comment": comment, "full": full}
    if ignore_window:
        payload["ignoreWindow"] = True
    _reply(rollout, "promote", payload, output, address, namespace)


def register(app: typer.Typer) -> None:
    """Add ``status`` and the action commands to ``app``."""
    app.command()(status)
    for action in (approve, abort, pause, resume, promote):
        app.command()(action)
