"""What the Temporal UI shows of a rollout at a glance: its summary and details.

Temporal's workflow user metadata has two parts: a *static* summary and details, fixed at start by
whoever starts the workflow (``sluice start``, or ``temporal workflow start --static-summary``),
and *current details*, which the workflow itself sets and the UI reads through the built-in
``__temporal_workflow_metadata`` query. :func:`static_summary` and :func:`static_details` describe
the spec; :class:`CurrentDetails` keeps the current details equal to :func:`current_details` of
the rollout's state, set by the event sink on every change.

Everything here is pure (the state in, short Temporal markdown out): setting the current details
is not a command, so it never touches the history and needs no patch; a replay computes the same
text from the same state.
"""

from __future__ import annotations

from collections.abc import Callable

from workflows.carried import RolloutState
from workflows.routers import EnvoyRouterSpec, GatewayApiRouterSpec, IstioRouterSpec
from workflows.spec import RolloutSpec
from workflows.state import TERMINAL_PHASES, WaitingFor, plan_view
from workflows.timeline import utc

__all__ = ["MAX_LINE", "CurrentDetails", "current_details", "static_details", "static_summary"]

MAX_LINE = 300
"""Characters per line of the details: an error message can be long, a glance cannot."""

WAITING_FOR = {
    "approval": "approval",
    "resume": "resume",
    "bake": "bake",
    "window": "deployment window",
    "route": "the route to be free",
    "ready": "the canary to be ready",
}


def static_summary(spec: RolloutSpec) -> str:
    """One line for the workflow list: ``reviews: reviews-v1 → reviews-v2, 7 steps (envoy)``."""
    steps = len(spec.steps)
    return (
        f"{spec.service}: {spec.stable.label()} → {spec.canary.label()}, "
        f"{steps} step{'s' if steps != 1 else ''} ({spec.router.kind})"
    )


def static_details(spec: RolloutSpec) -> str:
    """The plan and its checks, as markdown (shown under the summary on the rollout's page)."""
    lines = [f"**{spec.service}** in namespace `{spec.namespace}`, through {_router(spec)}"]
    if spec.requested_by:
        lines.append(f"requested by {spec.requested_by}")
    lines += ["", "**Plan**", ""]
    lines += [f"- step {view.index}: {view.description}" for view in plan_view(spec)]
    checks: list[str] = []
    if spec.verify is not None:
        by = f"header {spec.verify.header}" if spec.verify.header else "body match"
        checks.append(f"- verify: {spec.verify.samples} samples ({by}) after every traffic change")
    if spec.analysis is not None:
        names = ", ".join(metric.name for metric in spec.analysis.metrics)
        checks.append(f"- analysis: {names}")
    if spec.windows or spec.blackouts:
        checks.append("- deployment windows: traffic moves forward only inside them")
    if checks:
        lines += ["", "**Checks**", "", *checks]
    return "\n".join(_short(line) for line in lines)


def current_details(state: RolloutState, stable: str = "stable", canary: str = "canary") -> str:
    """Phase and step, weights, what it waits for and until when, approvals, the last
    verification and analysis, and how it ended: a few markdown lines."""
    status = state.status
    last = len(status.steps) - 1
    step = status.current_step
    headline = f"**{status.phase}**"
    if 0 <= step < len(status.steps):
        headline += f" · step {step} of {last}: {status.steps[step].description}"
    lines = [headline, ""]
    if status.weights is not None:
        lines.append(f"- **traffic:** {status.weights.stable}% {stable} · {status.weights.canary}% {canary}")
    waiting = status.waiting_for
    if waiting is not None:
        lines.append(f"- **waiting for:** {_waiting(waiting)}")
        if waiting.kind == "approval":
            lines.append(f"- **approvals:** {_approvals(waiting)}")
    paused = status.paused
    if paused is not None and (waiting is None or waiting.kind != "resume"):
        lines.append(f"- **paused** by {paused.by}" + (f": {paused.reason}" if paused.reason else ""))
    if status.verifications:
        record = status.verifications[-1]
        result = record.result
        verdict = "passed" if result.passed else f"FAILED ({result.reason})" if result.reason else "FAILED"
        lines.append(
            f"- **last verification** (step {record.step}): {verdict}, {result.stable} {stable} / "
            f"{result.canary} {canary} of {result.samples}, p={result.p_value:.3g}"
        )
    if status.analysis:
        tallies = [f"{m.name} {m.phase} ({m.successful}/{m.count} ok)" for m in status.analysis]
        lines.append("- **analysis:** " + "; ".join(tallies))
    if status.phase in TERMINAL_PHASES or status.phase == "RollingBack":
        why = f"{status.error_type}: {status.message}" if status.error_type else status.message
        if why:
            lines.append(f"- **outcome:** {why}")
    return "\n".join(_short(line) for line in lines).rstrip()


def _router(spec: RolloutSpec) -> str:
    router = spec.router
    if isinstance(router, IstioRouterSpec):
        return f"Istio VirtualService `{router.virtual_service}`"
    if isinstance(router, GatewayApiRouterSpec):
        return f"Gateway API HTTPRoute `{router.http_route}`"
    if isinstance(router, EnvoyRouterSpec):
        return f"Envoy route config `{router.route_config}` in `{router.routes_file}`"
    return "the dryRun router (changes nothing)"


def _waiting(waiting: WaitingFor) -> str:
    text = f"{WAITING_FOR.get(waiting.kind, waiting.kind)} at step {waiting.step}"
    if waiting.until is not None:
        text += f" until {utc(waiting.until)}"
    if waiting.reason:
        text += f" ({waiting.reason})"
    if waiting.hint:
        text += f"; {waiting.hint}"
    return text


def _approvals(waiting: WaitingFor) -> str:
    who = ", ".join(waiting.approved_by) if waiting.approved_by else "none yet"
    needed = waiting.still_needed
    return who + (f" · {needed} more needed" if needed else "")


def _short(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


class CurrentDetails:
    """Keeps the workflow's current details equal to :func:`current_details` of its state.

    ``set_details`` is ``workflow.set_current_details`` in a workflow (passed in, so this module
    stays free of the workflow runtime); it is called only when the text changed.
    """

    def __init__(
        self, set_details: Callable[[str], None], stable: str = "stable", canary: str = "canary"
    ) -> None:
        self._set_details = set_details
        self.stable, self.canary = stable, canary
        self.shown = ""

    def name_versions(self, spec: RolloutSpec) -> None:
        """Name the two versions as the spec does (``reviews-v1``) instead of stable/canary."""
        self.stable, self.canary = spec.stable.label(), spec.canary.label()

    def show(self, state: RolloutState) -> None:
        """Set the current details from ``state`` if they changed."""
        text = current_details(state, self.stable, self.canary)
        if text != self.shown:
            self.shown = text
            self._set_details(text)
