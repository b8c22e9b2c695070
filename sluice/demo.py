"""``sluice demo``: the whole local stack and one rollout of examples/reviews-local.yaml.

It starts the stack, starts the rollout through Temporal, prints the split Envoy served at each
step (measured by the workflow's own verification), approves each gate itself (or, with
``--interactive``, prints the ``temporal`` commands to paste and waits), and stops everything.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from temporalio.client import WorkflowFailureError, WorkflowHandle

from sluice.client import load_spec_file, start_rollout
from sluice.stack import LocalStack, StackPorts
from worker.client import connect
from worker.settings import Settings

__all__ = ["run_demo"]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "reviews-local.yaml"


def _split_line(verification: dict[str, Any], stable: str, canary: str) -> str:
    """``step 1  [██░░░░░░░░░░░░░░░░░░] 10%  served 178 reviews-v1 / 22 reviews-v2  ok (p=0.64)``"""
    result = verification["result"]
    expected = result["expected"]
    filled = round(expected["canary"] / 5)
    bar = "█" * filled + "░" * (20 - filled)
    verdict = f"[green]ok[/green] (p={result['pValue']:.2g})" if result["passed"] else f"[red]MISMATCH[/red]: {result['reason']}"
    return (
        f"step {verification['step']}  [{bar}] {expected['canary']:>3}% canary  "
        f"served [bold]{result['stable']} {stable} / {result['canary']} {canary}[/bold]  {verdict}"
    )


def _paste_commands(console: Console, address: str, workflow_id: str, step: int) -> None:
    base = f"temporal --address {address}"
    console.print(f"\n[bold]Waiting for approval at step {step}.[/bold] In another terminal (with .venv/bin on PATH):")
    console.print(f"  {base} workflow update execute --workflow-id {workflow_id} --name approve --input '{{\"by\": \"'$USER'\", \"step\": {step}}}'")
    console.print(f"  {base} workflow signal --workflow-id {workflow_id} --name approve --input '{{\"by\": \"'$USER'\"}}'")
    console.print(f"  {base} workflow query --workflow-id {workflow_id} --name status")
    console.print(f"  {base} workflow update execute --workflow-id {workflow_id} --name abort --input '{{\"by\": \"'$USER'\", \"reason\": \"demo\"}}'")


async def _follow(handle: WorkflowHandle[Any, Any], console: Console, address: str, interactive: bool, stable: str, canary: str) -> dict[str, Any]:
    shown_verifications = 0
    announced_gate: int | None = None
    while True:
        status: dict[str, Any] = await handle.query("status")
        for verification in status["verifications"][shown_verifications:]:
            console.print(_split_line(verification, stable, canary), highlight=False)
        shown_verifications = len(status["verifications"])
        waiting = status.get("waitingFor")
        if waiting and waiting["kind"] == "approval" and announced_gate != waiting["step"]:
            announced_gate = waiting["step"]
            weights = status["weights"]
            console.print(f"[cyan]step {waiting['step']}[/cyan]: {weights['stable']}% {stable} / {weights['canary']}% {canary}, waiting for approval")
            if interactive:
                _paste_commands(console, address, handle.id, waiting["step"])
            else:
                answer = await handle.execute_update("approve", {"by": "sluice-demo", "step": waiting["step"], "comment": "approved by the demo"})
                console.print(f"  approved: {answer['message']}")
        if status["phase"] in ("Succeeded", "RolledBack", "Failed"):
            return status
        await asyncio.sleep(0.2)


async def run_demo(state_dir: Path, interactive: bool, console: Console) -> int:
    """Run the demo; returns the process exit code (0 when the rollout succeeded)."""
    if state_dir.exists():
        shutil.rmtree(state_dir)  # a demo always starts from a fresh route and an empty history
    stack = LocalStack(state_dir, StackPorts(temporal_ui=8233))
    data, spec = load_spec_file(EXAMPLE)
    data["router"]["routesFile"] = str(stack.envoy.routes_file)
    console.print("[bold]Starting the local stack[/bold] (Temporal dev server, Envoy, reviews-v1, reviews-v2, worker)...")
    with stack:
        console.print(f"  Temporal {stack.temporal.address}  UI http://127.0.0.1:{stack.ports.temporal_ui}  Envoy {stack.envoy.url}  admin {stack.envoy.admin_url}")
        client = await connect(Settings(address=stack.temporal.address))
        handle = await start_rollout(client, data, spec, stack.task_queue)
        console.print(f"[bold]Rollout started[/bold]: workflow id {handle.id} ({len(spec.steps)} steps after step 0)")
        status = await _follow(handle, console, stack.temporal.address, interactive, spec.stable.host, spec.canary.host)
        try:
            await handle.result()
        except WorkflowFailureError as error:
            console.print(f"[red]rollout {status['phase']}[/red]: {error.cause}")
            return 1
        routes = stack.envoy.routes_file.read_text()
        console.print(f"[green]Rollout succeeded[/green]: {status['message']}. Approvals: " + ", ".join(f"step {a['step']} by {a['by']}" for a in status["approvals"]))
        console.print(f"Final route ({stack.envoy.routes_file}):\n{routes}")
    console.print("Stack stopped.")
    return 0
