"""``sluice``: sugar over the Temporal client. Everything here is also doable with ``temporal``."""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from sluice import listing
from sluice.audit import audit_rows, to_csv, to_json
from sluice.audit_table import print_audit
from sluice.client import (
    RolloutNotFound,
    live_status,
    load_spec_file,
    rollout_runs,
    start_rollout,
    still_running,
)
from sluice.demo import run_demo
from sluice.stack import LocalStack, StackError, StackPorts
from worker.client import connect
from worker.settings import Settings, SettingsError
from workflows.spec import SpecError

__all__ = ["app", "main"]

app = typer.Typer(
    help="sluicegate: durable progressive delivery on Temporal.", no_args_is_help=True, add_completion=False
)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

Address = Annotated[str, typer.Option(envvar="TEMPORAL_ADDRESS", help="Temporal frontend host:port.")]
Namespace = Annotated[str, typer.Option(envvar="TEMPORAL_NAMESPACE", help="Temporal namespace.")]
TaskQueue = Annotated[str, typer.Option(envvar="TEMPORAL_TASK_QUEUE", help="Task queue the workers poll.")]
By = Annotated[str, typer.Option(help="Who acts (recorded in the rollout's audit trail). Default: $USER.")]
RolloutId = Annotated[str, typer.Argument(help="Workflow id, e.g. rollout-default-reviews.")]


class CliError(Exception):
    """Printed as one line on stderr; the process exits 2."""


def _run(coroutine: Awaitable[T]) -> T:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


async def _client(address: str, namespace: str) -> Client:
    try:
        settings = dataclasses.replace(Settings.from_env(), address=address, namespace=namespace)
        # Temporal records this with every action; `sluice audit` compares it with the claimed --by.
        return await connect(settings, identity=f"sluice:{_default_by()}@{socket.gethostname()}")
    except SettingsError as error:
        raise CliError(str(error)) from None
    except RuntimeError as error:
        raise CliError(f"cannot reach Temporal at {address}: {error} (is `sluice dev` running?)") from None


def _default_by() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def _message(
    address: str, namespace: str, rollout: str, name: str, payload: dict[str, Any]
) -> dict[str, Any]:
    client = await _client(address, namespace)
    handle = client.get_workflow_handle(rollout)
    try:
        result: dict[str, Any] = await handle.execute_update(name, payload)
    except WorkflowUpdateFailedError as error:
        raise CliError(f"{name} refused: {error.cause}") from None
    except RPCError as error:
        raise CliError(f"{name} failed: {error.message}") from None
    return result


@app.command()
def validate(spec_file: Annotated[Path, typer.Argument(help="Rollout spec (YAML or JSON).")]) -> None:
    """Check a spec without starting anything."""
    _, spec = load_spec_file(spec_file)
    console.print(f"{spec_file}: valid; workflow id {spec.workflow_id}, {len(spec.steps)} steps after step 0")


@app.command()
def start(
    spec_file: Annotated[Path, typer.Argument(help="Rollout spec (YAML or JSON).")],
    workflow_id: Annotated[str | None, typer.Option(help="Default: rollout-<namespace>-<service>.")] = None,
    address: Address = "127.0.0.1:7233",
    namespace: Namespace = "default",
    task_queue: TaskQueue = "rollouts",
) -> None:
    """Validate a spec and start its rollout (same as `temporal workflow start --type Rollout`)."""
    data, spec = load_spec_file(spec_file)

    async def go() -> str:
        client = await _client(address, namespace)
        try:
            handle = await start_rollout(client, data, spec, task_queue, workflow_id)
        except RPCError as error:
            raise CliError(f"cannot start: {error.message}") from None
        return handle.id

    started = _run(go())
    console.print(f"started {started}; follow it with: sluice status {started}")


@app.command()
def status(
    rollout: RolloutId,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw status JSON.")] = False,
    address: Address = "127.0.0.1:7233",
    namespace: Namespace = "default",
) -> None:
    """Show phase, step, weights, what it waits for, approvals and checks."""

    async def go() -> dict[str, Any]:
        client = await _client(address, namespace)
        try:
            result: dict[str, Any] = await client.get_workflow_handle(rollout).query("status")
        except RPCError as error:
            raise CliError(f"cannot query {rollout}: {error.message}") from None
        return result

    current = _run(go())
    if as_json:
        print(json.dumps(current, indent=2))
        return
    weights = current.get("weights") or {}
    console.print(
        f"[bold]{current['rolloutId']}[/bold] phase [cyan]{current['phase']}[/cyan] "
        f"step {current['currentStep']} weights {weights.get('stable')}/{weights.get('canary')}"
    )
    if current.get("waitingFor"):
        waiting = current["waitingFor"]
        console.print(
            f"  waiting for {waiting['kind']} at step {waiting['step']} since {waiting['since']}"
            + (f" until {waiting['until']}" if waiting.get("until") else "")
            + (f": {waiting['reason']}" if waiting.get("reason") else "")
            + f" ({waiting.get('hint', '')})"
        )
        if waiting.get("stillNeeded"):  # a gate still short of its approvals
            who = ", ".join(waiting.get("approvedBy") or []) or "nobody yet"
            console.print(f"  approved by {who}; {waiting['stillNeeded']} more distinct approver(s) needed")
    for step in current["steps"]:
        console.print(f"  {step['index']:>2} {step['state']:<8} {step['description']}")
    for approval in current["approvals"]:
        console.print(
            f"  approved step {approval['step']} by {approval['by']} at {approval['at']} "
            f"via {approval['via']} {approval['comment']}"
        )
    if current.get("message"):
        console.print(f"  {current['message']}")


def _message_command(name: str, doc: str, extra: Callable[..., dict[str, Any]]) -> None:
    def command(
        rollout: RolloutId,
        by: By = "",
        comment: Annotated[str, typer.Option(help="Recorded with the action.")] = "",
        step: Annotated[int | None, typer.Option(help="approve: refuse unless waiting at this step.")] = None,
        full: Annotated[bool, typer.Option(help="promote: go straight to 100%.")] = False,
        ignore_window: Annotated[
            bool, typer.Option(help="promote: move traffic now although no deployment window is open.")
        ] = False,
        address: Address = "127.0.0.1:7233",
        namespace: Namespace = "default",
    ) -> None:
        payload = {"by": by or _default_by(), **extra(comment=comment, step=step, full=full)}
        if ignore_window and name == "promote":
            payload["ignoreWindow"] = True
        result = _run(_message(address, namespace, rollout, name, payload))
        console.print(f"{result['message']} (phase {result['phase']}, step {result['currentStep']})")

    command.__doc__ = doc
    app.command(name=name)(command)


_message_command(
    "approve",
    "Pass the approval gate the rollout waits at.",
    lambda comment, step, full: {"comment": comment, **({"step": step} if step is not None else {})},
)
_message_command(
    "abort",
    "Roll back to 100% stable now (--comment is the reason).",
    lambda comment, step, full: {"reason": comment},
)
_message_command(
    "pause",
    "Hold at the current weights (--comment is the reason).",
    lambda comment, step, full: {"reason": comment},
)
_message_command("resume", "Go on after a pause.", lambda comment, step, full: {"comment": comment})
_message_command(
    "promote",
    "Skip the current wait; --full goes straight to 100%; --ignore-window overrides a window once.",
    lambda comment, step, full: {"comment": comment, "full": full},
)


class AuditOutput(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command()
def audit(
    rollout: RolloutId,
    output: Annotated[
        AuditOutput, typer.Option("--output", "-o", help="table (for people), json or csv (for machines).")
    ] = AuditOutput.table,
    run_id: Annotated[
        str | None,
        typer.Option(help="Audit the rollout this run belongs to (default: the newest)."),
    ] = None,
    address: Address = "127.0.0.1:7233",
    namespace: Namespace = "default",
) -> None:
    """Who did what, from the workflow history: every human action and traffic change, with the
    claimed `by` and the identity of the client that sent it (MISMATCH when they differ)."""

    async def go() -> tuple[list[Any], dict[str, Any] | None]:
        client = await _client(address, namespace)
        try:
            runs = await rollout_runs(client, rollout, run_id)
        except RolloutNotFound as error:
            raise CliError(str(error)) from None
        except RPCError as error:
            raise CliError(f"cannot read the history of {rollout}: {error.message}") from None
        status = await live_status(client, rollout, runs[-1]) if still_running(runs[-1]) else None
        if status is None and still_running(runs[-1]):
            errors.print(
                f"note: {rollout} is running and its status query did not answer (no worker?): "
                "signals of its current run show no step and 'delivered'",
                highlight=False,
            )
        return runs, status

    runs, status = _run(go())
    rows = audit_rows(runs, status)
    if output is AuditOutput.json:
        print(json.dumps(to_json(rollout, runs, rows), indent=2))
    elif output is AuditOutput.csv:
        sys.stdout.write(to_csv(rows))
    else:
        print_audit(console, rollout, len(runs), rows)


@app.command(name="list")
def list_command(
    phase: Annotated[str | None, typer.Option(help="Only this phase, e.g. WaitingForApproval.")] = None,
    service: Annotated[str | None, typer.Option(help="Only rollouts of this service.")] = None,
    running: Annotated[bool, typer.Option("--running", help="Only rollouts still running.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = listing.DEFAULT_LIMIT,
    output: Annotated[
        listing.ListOutput, typer.Option("--output", "-o", help="table or json.")
    ] = listing.ListOutput.table,
    address: Address = "127.0.0.1:7233",
    namespace: Namespace = "default",
) -> None:
    """All rollouts, newest first: service, phase, step, canary weight, what each waits for, age
    (from Temporal's visibility store and the Sluice* search attributes)."""

    async def go() -> list[listing.RolloutRow]:
        client = await _client(address, namespace)
        try:
            return await listing.list_rollouts(
                client, phase=phase, service=service, running=running, limit=limit
            )
        except listing.ListFilterError as error:
            raise CliError(str(error)) from None
        except RPCError as error:
            raise CliError(f"cannot list rollouts: {error.message}") from None

    rows = _run(go())
    if output is listing.ListOutput.table and not rows:
        errors.print("no rollouts found", highlight=False)
    else:
        print(listing.render(rows, output))


@app.command()
def dev(
    state_dir: Annotated[
        Path, typer.Option(help="Where the dev server's database, Envoy's files and logs live.")
    ] = Path(".sluice"),
    fresh: Annotated[
        bool, typer.Option(help="Reset the route to 100% stable (the database is kept).")
    ] = False,
) -> None:
    """Run the local stack on loopback until Ctrl-C: Temporal, Envoy, two backends, a worker."""
    stack = LocalStack(state_dir, StackPorts())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stack.start(reset_routes=fresh)
    except StackError as error:
        raise CliError(str(error)) from None
    try:
        ports = stack.ports
        console.print("[bold]sluice dev[/bold] is running (Ctrl-C stops everything):")
        console.print(f"  Temporal      {stack.temporal.address} (database {stack.temporal.db_file})")
        console.print(f"  Temporal UI   http://127.0.0.1:{ports.temporal_ui}")
        console.print(
            f"  Envoy         {stack.envoy.url} (admin {stack.envoy.admin_url}, "
            f"routes {stack.envoy.routes_file})"
        )
        console.print(f"  reviews-v1    {stack.stable.url}    reviews-v2 {stack.canary.url}")
        console.print(f"  worker        task queue {stack.task_queue}, log {stack.worker.log_path}")
        console.print(
            "Start the example: temporal workflow start --type Rollout --task-queue rollouts "
            "--workflow-id rollout-default-reviews --input-file examples/reviews-local.json"
        )
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping...")
        stack.stop()


@app.command()
def demo(
    interactive: Annotated[
        bool, typer.Option(help="Wait for you to approve with the temporal CLI instead.")
    ] = False,
    state_dir: Annotated[Path, typer.Option(help="Scratch directory (wiped first).")] = Path(".sluice/demo"),
    bad_canary: Annotated[
        bool,
        typer.Option(
            "--bad-canary",
            help="Give reviews-v2 20% errors first: the analysis must roll it back by itself at 10%. "
            "Exit 0 when that rollback happened, 3 when it did not.",
        ),
    ] = False,
) -> None:
    """Start the local stack and Prometheus, roll reviews-v2 out step by step under a small load,
    show the served split and each metric measurement, stop.

    Exit codes: 0 when the demo showed what it set out to (the rollout succeeded; with
    --bad-canary, the analysis rolled the canary back at 10% and Envoy serves 100% reviews-v1),
    1 when the plain rollout failed, 3 when --bad-canary's rollback did not happen as expected,
    2 when the stack could not start (e.g. prometheus missing: apt-get install prometheus).
    """
    try:
        code = _run(run_demo(state_dir, interactive, console, bad_canary=bad_canary))
    except StackError as error:
        raise CliError(str(error)) from None
    raise typer.Exit(code)


def main() -> None:
    """Console entry point: clear one-line errors, and a clean exit (see sdk-python#300)."""
    code = 0
    try:
        app()
    except SystemExit as done:  # typer exits with the command's code (2 for usage errors)
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except (SpecError, CliError) as error:
        errors.print(f"[red]error:[/red] {error}", highlight=False)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's Rust runtime can abort a short-lived process at interpreter exit;
    # everything is flushed, so leave without tearing the runtime down.
    os._exit(code)
