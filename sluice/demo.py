"""``sluice demo``: the whole local stack and one rollout of the packaged ``reviews-local.yaml``.

It starts a Prometheus scraping Envoy's admin ``/stats/prometheus`` and the stack, runs a small
background load through Envoy (so the metrics have data), and starts the rollout through Temporal
with what a change-managed rollout adds (:func:`demo_gates`): an ``analysis`` section (reviews-v2's
error rate from Prometheus, at most 5%), a four-eyes policy on the last gate, and a ``notify`` sink
whose webhook is a receiver in this process (its URL reaches the worker as an environment
variable, never through the spec). It prints the split Envoy served at each step (measured by the
workflow's own verification), every metric measurement and every notification received, approves
each gate itself (the four-eyes gate as two people, after showing that one person twice is
refused), or, with ``--interactive``, prints the ``temporal`` commands to paste and waits, and
stops everything.

With ``--bad-canary`` reviews-v2 answers 20% of its requests with a 503 before the rollout
starts: the analysis must roll it back by itself at 10% (``AnalysisFailed``), and Envoy must serve
100% reviews-v1 afterwards. That rollback is the demo's success.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
from collections import Counter
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from sluice._cli_base import default_by
from sluice.client import load_spec_file, start_rollout
from sluice.stack import Fault, LocalStack, StackPorts, WebhookReceiver, free_port, sample_versions
from worker.client import connect
from worker.settings import Settings
from workflows.spec import validate_spec

__all__ = [
    "BAD_CANARY_FAULT",
    "DEMO_SPEC",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNEXPECTED",
    "demo_analysis",
    "demo_gates",
    "error_ratio_query",
    "run_demo",
]

DEMO_SPEC = resources.files("sluice") / "assets" / "reviews-local.yaml"
"""The demo's rollout spec: package data, so an installed ``sluice demo`` runs from any directory
(the same spec as the repository's examples/reviews-local.yaml)."""

EXIT_OK = 0
"""The demo showed what it set out to show (a rollout, or with ``--bad-canary`` its rollback)."""
EXIT_FAILED = 1
"""Plain demo: the rollout did not succeed."""
EXIT_UNEXPECTED = 3
"""``--bad-canary``: the outcome was not the expected automatic rollback at 10%."""

BAD_CANARY_FAULT = Fault(error_rate=0.2)
LOAD_PER_SECOND = 30.0
ERROR_RATE_MAX = 0.05
BAKE = "7s"
FOUR_EYES_GATE = 6
"""The plan step of the demo's last gate (before removeOld), which two distinct people must pass."""
FOUR_EYES_APPROVERS = ("alice", "bob")
REQUESTED_BY = "carol"
WEBHOOK_ENV = "SLUICE_DEMO_WEBHOOK_URL"
"""Where the demo's worker finds the notification receiver's URL (the spec names only this)."""


def error_ratio_query(cluster: str, window: str = "5s") -> str:
    """``cluster``'s share of 5xx answers over ``window``, from Envoy's stats in Prometheus.

    Envoy exports ``upstream_rq_xx{envoy_response_code_class="5"}`` only after a cluster's first
    5xx, so the numerator falls back to ``vector(0)``: a healthy canary reads 0. The denominator
    keeps "no data" honest: no request to the canary in the window is an empty result
    (inconclusive), not 0.
    """
    selector = f'envoy_cluster_name="{cluster}"'
    return (
        f'(sum(rate(envoy_cluster_upstream_rq_xx{{{selector},envoy_response_code_class="5"}}'
        f"[{window}])) or vector(0))"
        f" / (sum(rate(envoy_cluster_upstream_rq_completed{{{selector}}}[{window}])) > 0)"
    )


def demo_analysis(prometheus_url: str, canary: str, bake: str = BAKE) -> dict[str, Any]:
    """The ``analysis`` section the demo adds to :data:`DEMO_SPEC` (``bake``: at each weight)."""
    return {
        "interval": "2s",
        # Long enough at each weight for a bad canary to show in a few measurements (and be
        # rolled back before the demo approves the next step), short enough for a quick demo.
        "bake": bake,
        "metrics": [
            {
                "name": "error-rate",
                "prometheus": {"address": prometheus_url, "query": error_ratio_query(canary)},
                "max": ERROR_RATE_MAX,
                # Right after a shift the canary may have no sample in the window yet.
                "inconclusiveLimit": 10,
            }
        ],
    }


def demo_gates(data: dict[str, Any]) -> dict[str, Any]:
    """What the demo adds to :data:`DEMO_SPEC` besides the analysis: who asked, a four-eyes
    policy on the last gate, and a Slack-format notification sink read from :data:`WEBHOOK_ENV`."""
    steps = list(data["steps"])
    policy = {"approvers": [*FOUR_EYES_APPROVERS, "sre-*"], "required": 2}
    steps[FOUR_EYES_GATE - 1] = {"approval": {"policy": policy}}
    sink = {
        "name": "demo-chat",
        "webhook": {"urlEnv": WEBHOOK_ENV},
        "format": "slack",
        "on": ["started", "waitingForApproval", "paused", "rolledBack", "succeeded", "failed"],
    }
    return {**data, "requestedBy": REQUESTED_BY, "steps": steps, "notify": [sink]}


def _notification_line(body: Any) -> str:
    """``  notification to demo-chat: :raised_hand: reviews: waiting for approval at step 2: ...``"""
    text = body.get("text", "") if isinstance(body, dict) else str(body)
    return f"  [magenta]notification[/magenta] to demo-chat: {escape(text)}"


def _split_line(verification: dict[str, Any], stable: str, canary: str) -> str:
    """``step 1  [██░░░░░░░░░░░░░░░░░░] 10%  served 178 reviews-v1 / 22 reviews-v2  ok (p=0.64)``"""
    result = verification["result"]
    expected = result["expected"]
    filled = round(expected["canary"] / 5)
    bar = "█" * filled + "░" * (20 - filled)
    verdict = (
        f"[green]ok[/green] (p={result['pValue']:.2g})"
        if result["passed"]
        else f"[red]MISMATCH[/red]: {result['reason']}"
    )
    return (
        f"step {verification['step']}  [{bar}] {expected['canary']:>3}% canary  "
        f"served [bold]{result['stable']} {stable} / {result['canary']} {canary}[/bold]  {verdict}"
    )


_VERDICT_STYLE = {"Successful": "green", "Failed": "red", "Inconclusive": "yellow", "Error": "red"}


def _canary_weight_at(status: dict[str, Any], at: str) -> int | None:
    """The canary weight Envoy was set to when a measurement was taken (from the events)."""
    moment = datetime.fromisoformat(at)
    weight = None
    for event in status.get("events") or []:
        if event["event"] == "weightsSet" and datetime.fromisoformat(event["at"]) <= moment:
            weight = int(event["detail"].get("canary", 0))
    return weight


def _measurement_line(measurement: dict[str, Any], status: dict[str, Any]) -> str:
    """``  analysis at 10% canary: error-rate = 0  Successful (0 within max 0.05)``"""
    value = measurement["value"]
    shown = "no data" if value is None else f"{value:.3g}"
    verdict = measurement["verdict"]
    style = _VERDICT_STYLE.get(verdict, "white")
    weight = _canary_weight_at(status, measurement["at"])
    where = "" if weight is None else f" at {weight}% canary"
    return (
        f"  analysis{where}: {measurement['metric']} = {shown}  "
        f"[{style}]{verdict}[/{style}] ({measurement['message']})"
    )


def _new_measurements(status: dict[str, Any], shown: dict[str, int]) -> list[dict[str, Any]]:
    """Measurements not printed yet (``count`` is the metric's total; the list keeps the last
    few)."""
    fresh: list[dict[str, Any]] = []
    for metric in status.get("analysis") or []:
        name = metric["name"]
        new = metric["count"] - shown.get(name, 0)
        if new > 0:
            fresh += metric["measurements"][-new:]
            shown[name] = metric["count"]
    return fresh


def _go_on_commands(address: str, workflow_id: str, step: int, user: str) -> list[str]:
    """The ``temporal`` commands that act on the gate at ``step``, ready to paste as they are
    (names filled in: no ``$USER`` that may be empty; the JSON quoted for the shell)."""
    base = f"temporal --address {address}"
    approvers = FOUR_EYES_APPROVERS if step == FOUR_EYES_GATE else (user,)
    update = f"{base} workflow update execute --workflow-id {workflow_id}"
    lines = [
        f"{update} --name approve --input {shlex.quote(json.dumps({'by': by, 'step': step}))}"
        for by in approvers
    ]
    signal = json.dumps({"by": approvers[0]})
    lines.append(
        f"{base} workflow signal --workflow-id {workflow_id} --name approve --input {shlex.quote(signal)}"
    )
    lines.append(f"{base} workflow query --workflow-id {workflow_id} --name status")
    abort = json.dumps({"by": user, "reason": "demo"})
    lines.append(f"{update} --name abort --input {shlex.quote(abort)}")
    return lines


class _GateCommands:
    """Shows the commands that end the current wait. On a terminal they stay below everything
    else printed (a live footer) until the gate passes; into a pipe they are printed once."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        if console.is_terminal:
            self.live = Live(Text(""), console=console, auto_refresh=False, transient=True)
            self.live.start()

    def show(self, step: int, commands: list[str]) -> None:
        header = f"Waiting for approval at step {step}. In another terminal (with .venv/bin on PATH):"
        if step == FOUR_EYES_GATE:
            header += (
                f"\n  (two distinct approvers of {', '.join(FOUR_EYES_APPROVERS)}, sre-* must pass this "
                "gate; try the same name twice, or carol, who requested the rollout)"
            )
        body = Text(header + "\n" + "\n".join(f"  {line}" for line in commands), style="bold")
        if self.live is not None:
            self.live.update(body, refresh=True)
        else:
            self.console.print()
            self.console.print(body, highlight=False, soft_wrap=True)

    def clear(self) -> None:
        if self.live is not None:
            self.live.update(Text(""), refresh=True)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


OUTSIDE_ACTIONS = frozenset(
    {"approved", "promoted", "paused", "resumed", "abortRequested", "signalRefused", "windowOverridden"}
)
"""Events an interactive demo echoes: what people did from another terminal."""


def _outside_action_line(event: dict[str, Any]) -> str:
    """``  from outside: approved by dana at step 2 (update)``"""
    detail = event.get("detail") or {}
    via = f" ({detail['via']})" if detail.get("via") else ""
    line = f"  [magenta]from outside[/magenta]: {event['event']} by {escape(event.get('by') or '?')}"
    line += f" at step {event['step']}{via}"
    if event["event"] == "signalRefused":
        line += f": {escape(str(detail.get('reason', '')))}"
    return line


async def _approve_gate(handle: WorkflowHandle[Any, Any], console: Console, step: int) -> None:
    """Pass the gate as the demo: once as ``sluice-demo``; the four-eyes gate as two people,
    showing first that the same person twice is refused."""
    if step != FOUR_EYES_GATE:
        answer = await handle.execute_update(
            "approve", {"by": "sluice-demo", "step": step, "comment": "approved by the demo"}
        )
        console.print(f"  approved: {answer['message']}")
        return
    first, second = FOUR_EYES_APPROVERS
    answer = await handle.execute_update("approve", {"by": first, "step": step})
    console.print(f"  {first}: {answer['message']}")
    try:
        await handle.execute_update("approve", {"by": first, "step": step})
    except WorkflowUpdateFailedError as refused:
        cause = refused.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
        console.print(f"  {first} again: [yellow]refused[/yellow]: {escape(reason)}")
    answer = await handle.execute_update("approve", {"by": second, "step": step})
    console.print(f"  {second}: {answer['message']}")


async def _follow(
    handle: WorkflowHandle[Any, Any],
    console: Console,
    address: str,
    interactive: bool,
    stable: str,
    canary: str,
    notifications: _Notifications,
) -> dict[str, Any]:
    """Print what happens until the rollout ends; pass each gate (or, ``interactive``, show the
    commands that pass it and echo what people do from outside)."""
    shown_verifications = 0
    shown_measurements: dict[str, int] = {}
    events_seen = 0
    announced_gate: int | None = None
    commands = _GateCommands(console) if interactive else None
    try:
        while True:
            status: dict[str, Any] = await handle.query("status")
            for verification in status["verifications"][shown_verifications:]:
                console.print(_split_line(verification, stable, canary), highlight=False)
            shown_verifications = len(status["verifications"])
            for measurement in _new_measurements(status, shown_measurements):
                console.print(_measurement_line(measurement, status), highlight=False)
            notifications.print_new()
            # Every event ever recorded is counted; the newest ones are in the list.
            total = sum(status.get("eventCounts", {}).values())
            if commands is not None:
                for event in status["events"][len(status["events"]) - (total - events_seen) :]:
                    if event["event"] in OUTSIDE_ACTIONS:
                        console.print(_outside_action_line(event), highlight=False)
            events_seen = total
            waiting = status.get("waitingFor")
            at_gate = waiting["step"] if waiting and waiting["kind"] == "approval" else None
            if at_gate is not None and announced_gate != at_gate:
                announced_gate = at_gate
                weights = status["weights"]
                console.print(
                    f"[cyan]step {at_gate}[/cyan]: {weights['stable']}% {stable} / "
                    f"{weights['canary']}% {canary}, waiting for approval"
                )
                if commands is not None:
                    commands.show(at_gate, _go_on_commands(address, handle.id, at_gate, default_by()))
                else:
                    await _approve_gate(handle, console, at_gate)
            elif at_gate is None and commands is not None:
                commands.clear()
            if status["phase"] in ("Succeeded", "RolledBack", "Failed"):
                return status
            await asyncio.sleep(0.2)
    finally:
        if commands is not None:
            commands.stop()


class _Notifications:
    """Prints what the demo's receiver got since the last look."""

    def __init__(self, receiver: WebhookReceiver, console: Console) -> None:
        self.receiver, self.console, self.shown = receiver, console, 0

    def print_new(self) -> None:
        bodies = [delivery.body for delivery in self.receiver.accepted()]
        for body in bodies[self.shown :]:
            self.console.print(_notification_line(body), highlight=False)
        self.shown = len(bodies)


def _highest_canary_weight(status: dict[str, Any]) -> int:
    weights = [
        int(event["detail"].get("canary", 0))
        for event in status.get("events", [])
        if event["event"] == "weightsSet"
    ]
    return max(weights, default=0)


def _print_split(console: Console, split: Counter[str], stable: str, canary: str) -> None:
    other = {version: n for version, n in split.items() if version not in (stable, canary)}
    console.print(
        f"Final measured split: [bold]{split.get(stable, 0)} {stable} / {split.get(canary, 0)} "
        f"{canary}[/bold] of {sum(split.values())} requests through Envoy"
        + (f" (other: {other})" if other else ""),
        highlight=False,
    )


async def run_demo(
    state_dir: Path,
    interactive: bool,
    console: Console,
    bad_canary: bool = False,
    ports: StackPorts | None = None,
    bake: str = BAKE,
) -> int:
    """Run the demo; return the process exit code (``bake``: the analysis time at each weight).

    Plain demo: :data:`EXIT_OK` when the rollout succeeded, else :data:`EXIT_FAILED`. With
    ``bad_canary``: :data:`EXIT_OK` when the analysis rolled the canary back at 10% and Envoy
    serves 100% stable afterwards (the expected outcome), else :data:`EXIT_UNEXPECTED`.
    """
    # A demo always starts from a fresh route and an empty history.
    shutil.rmtree(state_dir, ignore_errors=True)
    ports = ports or StackPorts(temporal_ui=8233)
    # Notifications go to a receiver in this process; the worker reads its URL from the
    # environment (a webhook URL is a secret: the spec names only the variable).
    receiver = WebhookReceiver(port=free_port())  # its URL must be known before the worker starts
    worker_env = {WEBHOOK_ENV: receiver.url, "SLUICE_SECRET_ENV": WEBHOOK_ENV}
    if ports.temporal_ui is not None:
        worker_env["SLUICE_UI_URL"] = f"http://127.0.0.1:{ports.temporal_ui}"
    # A missing prometheus binary stops the demo here, before the stack binds anything.
    stack = LocalStack(
        state_dir,
        ports,
        with_prometheus=True,
        load_per_second=LOAD_PER_SECOND,
        extra_worker_env=worker_env,
    )
    data, spec = load_spec_file(DEMO_SPEC)
    stable, canary = spec.stable.host, spec.canary.host
    prometheus, load = stack.plane.prometheus, stack.plane.load
    data["router"]["routesFile"] = str(stack.envoy.routes_file)
    data["analysis"] = demo_analysis(prometheus.url, canary, bake)
    data = demo_gates(data)
    spec = validate_spec(data)
    if bad_canary:
        stack.canary.set_fault(BAD_CANARY_FAULT)
    console.print(
        "[bold]Starting the local stack[/bold] (Prometheus, Temporal dev server, Envoy, "
        f"{stable}, {canary}, worker)..."
    )
    with stack, receiver:
        console.print(
            f"  Temporal {stack.temporal.address}  UI http://127.0.0.1:{stack.ports.temporal_ui}  "
            f"Envoy {stack.envoy.url}  admin {stack.envoy.admin_url}  Prometheus {prometheus.url}"
        )
        if bad_canary:
            console.print(
                f"[yellow]Bad canary[/yellow]: {canary} answers "
                f"{BAD_CANARY_FAULT.error_rate:.0%} of its requests with a 503"
            )
        console.print(
            f"Background load: {LOAD_PER_SECOND:g} requests/s through Envoy. Analysis: "
            f"{canary} error rate from Prometheus every 2s, max {ERROR_RATE_MAX}, "
            f"{bake} bake at each weight"
        )
        client = await connect(Settings(address=stack.temporal.address))
        handle = await start_rollout(client, data, spec, stack.task_queue)
        console.print(
            f"[bold]Rollout started[/bold]: workflow id {handle.id} ({len(spec.steps)} steps after step 0)"
        )
        console.print(
            f"Gates: step {FOUR_EYES_GATE} needs two distinct approvers of "
            f"{', '.join(FOUR_EYES_APPROVERS)}, sre-* (requested by {REQUESTED_BY}, who may not approve); "
            f"notifications go to a local receiver ({receiver.url})",
            highlight=False,
        )
        notifications = _Notifications(receiver, console)
        status = await _follow(
            handle, console, stack.temporal.address, interactive, stable, canary, notifications
        )
        failure: ApplicationError | None = None
        try:
            await handle.result()
        except WorkflowFailureError as error:
            cause = error.cause
            failure = cause if isinstance(cause, ApplicationError) else ApplicationError(str(cause))
        status = await handle.query("status")
        notifications.print_new()  # the last ones were delivered before the workflow ended
        load.stop()
        split = sample_versions(stack.envoy.url, 100)
        console.print(f"Background load: {load.sent} requests sent, {load.failed} failed (5xx)")
        if bad_canary:
            code = _judge_bad_canary(console, status, failure, split, stable, canary)
        elif failure is not None:
            console.print(f"[red]rollout {status['phase']}[/red]: {escape(failure.message)}")
            _print_split(console, split, stable, canary)
            code = EXIT_FAILED
        else:
            routes = stack.envoy.routes_file.read_text()
            approvals = ", ".join(f"step {a['step']} by {a['by']}" for a in status["approvals"])
            console.print(f"[green]Rollout succeeded[/green]: {status['message']}. Approvals: {approvals}")
            _print_split(console, split, stable, canary)
            console.print(f"Final route ({stack.envoy.routes_file}):\n{routes}")
            code = EXIT_OK
    console.print("Stack stopped.")
    return code


def _judge_bad_canary(
    console: Console,
    status: dict[str, Any],
    failure: ApplicationError | None,
    split: Counter[str],
    stable: str,
    canary: str,
) -> int:
    highest = _highest_canary_weight(status)
    if failure is not None:
        console.print(
            f"[bold]Rolled back by the analysis[/bold] ({failure.type}, phase {status['phase']}, "
            f"highest canary weight {highest}%): {escape(status['message'])}",
            highlight=False,
        )
    _print_split(console, split, stable, canary)
    problems = []
    if failure is None:
        problems.append(f"the rollout succeeded ({status['message']}) instead of rolling back")
    elif failure.type != "AnalysisFailed":
        problems.append(f"it failed with {failure.type}, not AnalysisFailed")
    if highest > 10:
        problems.append(f"the canary reached {highest}% before the rollback (expected 10%)")
    if split.get(stable, 0) != sum(split.values()):
        problems.append(f"Envoy does not serve 100% {stable} afterwards: {dict(split)}")
    if problems:
        console.print("[red]Unexpected outcome[/red]: " + "; ".join(problems))
        return EXIT_UNEXPECTED
    console.print(
        f"[green]As expected[/green]: the bad canary was rolled back by itself at {highest}% "
        f"and Envoy serves 100% {stable}."
    )
    return EXIT_OK
