"""Names for the Temporal UI's timeline: what each activity and timer of a rollout is for.

Temporal shows an activity by its type (``set_weights``) and a timer by its duration unless the
command carries a summary (user metadata). These functions name them by what they do in the
rollout — ``setWeight 10``, ``verify split 90/10``, ``approval gate step 2 (timeout 4h)``,
``bake 7s (step 1)`` — so the timeline reads as the plan. Pure: data in, one line out.

Summaries are metadata on the command, not part of what a replay compares (the replay test
proves it on every saved history), so adding or changing them needs no ``workflow.patched``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from workflows._durations import format_duration
from workflows.models import Weights
from workflows.spec import RemoveOldStep

__all__ = [
    "READ_ROUTE",
    "ROLLBACK",
    "approval_gate",
    "bake",
    "canary_ready",
    "canary_retry",
    "claim_route",
    "measure",
    "measure_interval",
    "notify",
    "remove_old",
    "retire_delay",
    "retire_old",
    "rollback_retry",
    "route_busy_retry",
    "route_owner",
    "set_weight",
    "utc",
    "verify_split",
    "window_check",
    "window_wait",
]

READ_ROUTE = "read route"
ROLLBACK = "rollback to 100% stable"


def utc(moment: datetime) -> str:
    """``2026-12-05 09:00:00 UTC``: one clock for every reader of the UI."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def set_weight(weights: Weights) -> str:
    """``setWeight 10``: the canary's share the change sets (step 0 and full promotion too)."""
    return f"setWeight {weights.canary}"


def verify_split(weights: Weights, *, rolling_back: bool = False) -> str:
    """``verify split 90/10`` (stable/canary), ``... after rollback`` when checking a rollback."""
    return f"verify split {weights.stable}/{weights.canary}" + (" after rollback" if rolling_back else "")


def remove_old() -> str:
    return "removeOld: 100% canary alone"


def retire_old(step: RemoveOldStep) -> str:
    """``scaleToZero reviews-v1`` / ``delete reviews-v1``."""
    return f"{step.action} {step.deployment}"


def retire_delay(step: RemoveOldStep) -> str:
    return f"wait {format_duration(step.delay)} before retiring {step.deployment}"


def rollback_retry(pause: timedelta) -> str:
    return f"rollback retry in {format_duration(pause)}"


def approval_gate(step: int, timeout: timedelta) -> str:
    """The timer of a gate with a ``timeout``: ``approval gate step 2 (timeout 4h)``."""
    return f"approval gate step {step} (timeout {format_duration(timeout)})"


def bake(step: int, duration: timedelta) -> str:
    """A timed bake (analysis ``bake`` or a ``pause`` step with a duration): ``bake 7s (step 1)``."""
    return f"bake {format_duration(duration)} (step {step})"


def window_wait(step: int, until: datetime | None, ask_again: datetime) -> str:
    """``window wait until 2026-12-07 08:00:00 UTC (step 1)``; a wait longer than the weekly
    re-ask says when it asks again instead."""
    if until is not None and until <= ask_again:
        return f"window wait until {utc(until)} (step {step})"
    return f"window wait, ask again at {utc(ask_again)} (step {step})"


def window_check(change: str) -> str:
    """The ``deployment_window`` local activity: ``window check before setWeight 50``."""
    return f"window check before {change}"


def canary_ready() -> str:
    return "check canary ready"


def canary_retry(look_again: timedelta) -> str:
    return f"canary not ready: look again in {format_duration(look_again)}"


def claim_route(route: str) -> str:
    return f"claim route {route}"


def route_owner(claim_id: str) -> str:
    return f"who owns {claim_id}"


def route_busy_retry(retry: timedelta) -> str:
    return f"route busy: try again in {format_duration(retry)}"


def measure(metrics: Sequence[str]) -> str:
    """``measure error-rate, p99-latency``."""
    return "measure " + ", ".join(metrics)


def measure_interval(interval: timedelta) -> str:
    return f"analysis interval {format_duration(interval)}"


def notify(sink: str, event: str) -> str:
    """``notify team-chat: waitingForApproval``."""
    return f"notify {sink}: {event}"
