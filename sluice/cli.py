"""``sluice``: sugar over the Temporal client. Everything here is also doable with ``temporal``.

The commands that look at and steer one rollout (``status``, ``approve``, ...) are in
:mod:`sluice._cli_rollouts`; what all commands share (options, consoles, :class:`CliError`) in
:mod:`sluice._cli_base`. A new command is a function here under ``@app.command()``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from sluice import _cli_rollouts, listing
from sluice._cli_base import (
    Address,
    CliError,
    Namespace,
    Output,
    OutputFormat,
    RolloutId,
    SluiceGroup,
    SluiceTyper,
    TaskQueue,
    connect_client,
    default_by,
    make_console,
    print_json,
    run,
)
from sluice.audit import audit_rows, to_csv, to_json
from sluice.audit_table import print_audit
from sluice.client import (
    RolloutNotFound,
    live_status,
    load_spec_file,
    rollout_runs,
    start_rollout,
    still_running,
    task_queue_pollers,
)
from sluice.demo import BAKE, run_demo
from sluice.stack import LocalStack, StackError, StackPorts
from workflows._durations import parse_duration
from workflows.spec import SpecError

__all__ = ["CliError", "app", "main"]

app = SluiceTyper(
    help="sluicegate: durable progressive delivery on Temporal.",
    no_args_is_help=True,
    add_completion=True,
    cls=SluiceGroup,
)
console = make_console()
errors = make_console(stderr=True)
# The names commands used before the shared parts moved to sluice._cli_base.
_client, _run, _default_by = connect_client, run, default_by


def _version(value: bool) -> None:
    if value:
        try:
            print(f"sluice {version('sluicegate')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            print("sluice (version unknown: not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """sluicegate: durable progressive delivery on Temporal.

    Exit codes: 0 done; 1 a watched rollout did not succeed (status --watch); 2 an error (one
    line on stderr: a bad spec, a refusal, Temporal not reachable, a port in use).
    """


@app.command()
def validate(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="Rollout spec (YAML or JSON).")],
    output: Output = OutputFormat.text,
) -> None:
    """Check a spec without starting anything."""
    _, spec = load_spec_file(spec_file)
    if output is OutputFormat.json:
        print_json(
            {"file": str(spec_file), "valid": True, "workflowId": spec.workflow_id, "steps": len(spec.steps)}
        )
        return
    console.print(f"{spec_file}: valid; workflow id {spec.workflow_id}, {len(spec.steps)} steps after step 0")


@app.command()
def start(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="Rollout spec (YAML or JSON).")],
    workflow_id: Annotated[
        str | None, typer.Option(metavar="ID", help="Default: rollout-<namespace>-<service>.")
    ] = None,
    output: Output = OutputFormat.text,
    address: Address = "127.0.0.1:7233",
    namespace: Namespace = "default",
    task_queue: TaskQueue = "rollouts",
) -> None:
    """Validate a spec and start its rollout (same as `temporal workflow start --type Rollout`).

    Warns on stderr when no worker polls the task queue (the rollout is started all the same)."""
    data, spec = load_spec_file(spec_file)

    async def go() -> tuple[str, str | None, int | None]:
        client = await connect_client(address, namespace)
        try:
            handle = await start_rollout(client, data, spec, task_queue, workflow_id)
        except WorkflowAlreadyStartedError as error:
            raise CliError(await _already_running(client, error.workflow_id)) from None
        except RPCError as error:
            raise CliError(f"cannot start: {error.message}") from None
        return handle.id, handle.result_run_id, await task_queue_pollers(client, task_queue)

    started, run_id, pollers = run(go())
    if pollers == 0:
        errors.print(
            f"warning: no worker polls task queue {task_queue!r} in namespace {namespace}: the rollout "
            "is started but nothing runs it until a worker polls that queue (a typo in "
            "--task-queue / TEMPORAL_TASK_QUEUE?)",
            highlight=False,
            markup=False,
        )
    if output is OutputFormat.json:
        print_json(
            {"workflowId": started, "runId": run_id, "taskQueue": task_queue, "workerPolling": pollers != 0}
        )
        return
    console.print(f"started {started}; follow it with: sluice status {started} --watch", highlight=False)


async def _already_running(client: Client, workflow_id: str) -> str:
    """What to say when the id is taken by a running workflow: since when, and what to do."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
        since = f"started {described.start_time:%Y-%m-%d %H:%M:%S} UTC" if described.start_time else "running"
    except RPCError:
        since = "running"
    return (
        f"{workflow_id} is already running ({since}); one rollout of a service at a time: follow it with "
        f"`sluice status {workflow_id} --watch`, abort it with `sluice abort {workflow_id}`, or start under "
        "another --workflow-id"
    )


_cli_rollouts.register(app)


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
        client = await connect_client(address, namespace)
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

    runs, status = run(go())
    rows = audit_rows(runs, status)
    if output is AuditOutput.json:
        print_json(to_json(rollout, runs, rows))
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
        Path,
        typer.Option(metavar="DIR", help="Where the dev server's database, Envoy's files and logs live."),
    ] = Path(".sluice"),
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Reset the route to 100% stable (the database is kept).")
    ] = False,
) -> None:
    """Run the local stack on loopback until Ctrl-C: Temporal, Envoy, two backends, a worker.

    Ports 7233 (Temporal), 8233 (its UI), 10000 (Envoy), 9901 (Envoy admin), 9081 and 9082 (the
    backends) must be free: one in use is a one-line error naming it, exit 2."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stack = LocalStack(state_dir, StackPorts())
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
            "--workflow-id rollout-default-reviews --input-file examples/reviews-local.json",
            highlight=False,
        )
        console.print(
            "  (or: sluice start examples/reviews-local.yaml), then watch it: sluice status reviews --watch",
            highlight=False,
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
        bool, typer.Option("--interactive", help="Wait for you to approve with the temporal CLI instead.")
    ] = False,
    state_dir: Annotated[Path, typer.Option(metavar="DIR", help="Scratch directory (wiped first).")] = Path(
        ".sluice/demo"
    ),
    bad_canary: Annotated[
        bool,
        typer.Option(
            "--bad-canary",
            help="Give reviews-v2 20% errors first: the analysis must roll it back by itself at 10%. "
            "Exit 0 when that rollback happened, 3 when it did not.",
        ),
    ] = False,
    bake: Annotated[
        str,
        typer.Option(
            "--bake",
            metavar="DURATION",
            help=f"How long the analysis watches each weight before the next step (default {BAKE}). "
            "Shorter is a quicker demo; with --bad-canary, too short a bake may let the canary past 10%.",
        ),
    ] = BAKE,
) -> None:
    """Start the local stack and Prometheus, roll reviews-v2 out step by step under a small load,
    show the served split and each metric measurement, stop.

    Exit codes: 0 when the demo showed what it set out to (the rollout succeeded; with
    --bad-canary, the analysis rolled the canary back at 10% and Envoy serves 100% reviews-v1),
    1 when the plain rollout failed, 3 when --bad-canary's rollback did not happen as expected,
    2 when the stack could not start (e.g. prometheus missing: apt-get install prometheus).
    """
    try:
        parse_duration(bake)
    except ValueError as error:
        raise CliError(f"--bake: {error}") from None
    try:
        code = run(run_demo(state_dir, interactive, console, bad_canary=bad_canary, bake=bake))
    except StackError as error:
        raise CliError(str(error)) from None
    raise typer.Exit(code)


def _fail(message: str) -> None:
    errors.print(Text.assemble(("error:", "red"), " ", " ".join(message.split())), highlight=False)


def main() -> None:
    """Console entry point: clear one-line errors, and a clean exit (see sdk-python#300)."""
    code = 0
    try:
        app()
    except SystemExit as done:  # typer exits with the command's code (2 for usage errors)
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except (SpecError, CliError) as error:
        _fail(str(error))
        code = 2
    except KeyboardInterrupt:
        code = 130
    except RPCError as error:  # Temporal said no where no command expected it
        _fail(f"Temporal: {error.message}")
        code = 2
    except Exception as error:  # one line, as promised; SLUICE_DEBUG=1 shows where it came from
        if os.environ.get("SLUICE_DEBUG"):
            errors.print_exception()
        _fail(f"{type(error).__name__}: {error} (SLUICE_DEBUG=1 shows the traceback)")
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's Rust runtime can abort a short-lived process at interpreter exit;
    # everything is flushed, so leave without tearing the runtime down.
    os._exit(code)
