"""Why a rollout ends failed.

Each reason is the ``type`` of the ``ApplicationError`` the workflow fails with, after traffic
went back to 100% stable::

    InvalidSpec          the spec did not validate (no traffic touched)
    RolloutAborted       someone sent abort
    RolloutCancelled     the workflow was cancelled (temporal workflow cancel)
    VerificationFailed   the sampled split did not match the weights
    ApprovalTimedOut     an approval gate with a timeout expired
    AnalysisFailed       a metric failed its thresholds
    RouteNotFound, RouteInvalid, Forbidden, WorkloadError, ...
                         a non-retryable activity error, named after its cause
"""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

__all__ = ["RolloutFailure", "cause_type", "failure_from"]


class RolloutFailure(Exception):
    """Raised inside the workflow to stop the plan and roll back; ``error_type`` names why."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def cause_type(error: ActivityError) -> str | None:
    """The ``type`` of the ``ApplicationError`` an activity failed with (None for timeouts etc.)."""
    return error.cause.type if isinstance(error.cause, ApplicationError) else None


def failure_from(error: ActivityError) -> RolloutFailure:
    """Name a failed activity after its cause (``RouteNotFound``, ``Forbidden``, ...)."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return RolloutFailure(cause.type or "ActivityFailed", cause.message)
    if isinstance(cause, TimeoutError):
        return RolloutFailure("ActivityTimedOut", f"activity {error.activity_type} timed out ({cause.type})")
    return RolloutFailure("ActivityFailed", f"activity {error.activity_type} failed: {cause or error}")
