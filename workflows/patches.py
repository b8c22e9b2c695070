"""One marker for all of a new run's patches.

For every patch a new run asks about, Temporal records a marker and upserts the
``TemporalChangeVersion`` search attribute (a visibility write): eleven patches cost each new
rollout 22 history events and eleven visibility writes, most of them in its first workflow task.
A run that starts with this code records :data:`GENERATION` once, at its first patch question,
and that one marker answers every patch in :data:`IMPLIED`. Runs that started before it have no
such marker, so on replay they ask about each patch as they always did (their markers are in
their histories); a run that asks live gets ``True`` either way.

A patch added later must not be implied by this generation (runs of this generation did not take
it): ask ``workflow.patched`` about it directly, or start a new generation that implies it too.
"""

from __future__ import annotations

from temporalio import workflow

__all__ = ["GENERATION", "IMPLIED", "patched"]

GENERATION = "rollout-generation-1"

IMPLIED = frozenset(
    {
        "phase-derived-from-pause-conditions",
        "holds-release-no-step",
        "rollouts-own-their-route",
        "plan-stops-when-told",
        "rollback-retries-visibly",
        "canary-readiness",
        "strict-message-payloads",
        "search-attributes-for-listing",
        "stale-claim-settles",
        "split-check-must-be-able-to-fail",
        "search-attributes-once-per-task",
    }
)
"""Every patch a run of this generation has taken."""


def patched(patch_id: str) -> bool:
    """``workflow.patched(patch_id)`` for a patch of :data:`IMPLIED`: true for a run of this
    generation without a marker of its own."""
    if patch_id not in IMPLIED:
        raise ValueError(f"{patch_id!r} is not implied by {GENERATION!r}: ask workflow.patched")
    return workflow.patched(GENERATION) or workflow.patched(patch_id)
