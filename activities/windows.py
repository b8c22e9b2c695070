"""``deployment_window``: may traffic move forward now? (see :mod:`workflows.window_gate`)

A local activity, so its answer is recorded in history: the zone rules it reads (the system's
zoneinfo, else the ``tzdata`` package) can change with a worker upgrade, and a replayed rollout
must wait for the same opening it waited for when it ran.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from temporalio import activity

from workflows.windows import WindowDecision, WindowInput, window_decision

__all__ = ["deployment_window"]


@activity.defn(name="deployment_window")
def deployment_window(request: WindowInput) -> WindowDecision:
    """Whether a window is open at ``request.now`` and no blackout on; else until when, and why."""
    return window_decision(request.windows, request.blackouts, request.now, ZoneInfo)
