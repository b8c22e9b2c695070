"""Who may pass an approval gate: the spec's policy models and the rule, as pure functions.

``approvalPolicy`` at the top of the spec applies to every approval gate; a gate's own
``approval: {policy: ...}`` replaces it (the whole object). With neither, anyone may approve and
one approval passes a gate, as before policies existed. The rule (:func:`approver_refusal`) is
data in, verdict out: the workflow's message rules call it, tests call it without a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Annotated, Literal, Protocol

from pydantic import AfterValidator, Field, field_validator

from workflows._base import _Model, _SpecModel
from workflows._durations import Duration

__all__ = [
    "ANYONE",
    "Approval",
    "ApprovalPolicy",
    "ApprovalRules",
    "ApprovalStep",
    "PersonName",
    "approver_refusal",
    "distinct_approvers",
    "progress_answer",
    "still_needed",
]

GLOB_CHARACTERS = frozenset("*?[")


def _person(value: str) -> str:
    if not value.strip():
        raise ValueError(f"must name a person (a non-empty string), got {value!r}")
    return value.strip()


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


PersonName = Annotated[str, Field(strict=True, max_length=200), AfterValidator(_person)]
"""A person as ``by`` names them (``requestedBy``, an approver); surrounding spaces are dropped."""


class ApprovalPolicy(_SpecModel):
    """Who may approve a gate, and how many distinct people must."""

    approvers: list[PersonName] | None = Field(default=None, max_length=500)
    """Names or glob patterns (``sre-*``, matched case-sensitively); omitted: anyone."""
    required: Annotated[int, Field(strict=True), AfterValidator(_at_least_one)] = 1
    """Distinct approvers needed to pass the gate (four-eyes: 2)."""
    allow_requester: Annotated[bool, Field(strict=True)] = False
    """Whether the spec's ``requestedBy`` may approve."""

    @field_validator("approvers")
    @classmethod
    def _listed_once(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must name at least one approver (omit approvers to allow anyone), got []")
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once")
        return value

    def allows(self, by: str) -> bool:
        """Whether ``by`` is among the approvers (a name or a glob matching it)."""
        return self.approvers is None or any(fnmatchcase(by, pattern) for pattern in self.approvers)

    def names_only(self) -> list[str] | None:
        """The approvers when every entry is a plain name (no glob), else None."""
        if self.approvers is None or any(GLOB_CHARACTERS & set(entry) for entry in self.approvers):
            return None
        return self.approvers

    def problems(self, path: str, requested_by: str | None) -> list[str]:
        """Why no ``required`` distinct people could ever pass a gate under this policy."""
        names = self.names_only()
        if names is None:
            return []
        excluded = requested_by if requested_by in names and not self.allow_requester else None
        eligible = [name for name in names if name != excluded]
        if len(names) < self.required:
            return [
                f"{path}.required: {self.required} distinct approvers needed but approvers names "
                f"only {len(names)} ({', '.join(names)})"
            ]
        if excluded is not None and not eligible:
            return [
                f"{path}.approvers: {excluded} is the only approver but requested this rollout "
                "and may not approve it (allowRequester: false)"
            ]
        if len(eligible) < self.required:
            return [
                f"{path}.required: {self.required} distinct approvers needed but only {len(eligible)} "
                f"may approve ({', '.join(eligible)}): {excluded} requested this rollout "
                "(allowRequester: false)"
            ]
        return []


ANYONE = ApprovalPolicy()
"""The policy of a spec that sets none: anyone approves, one approval passes a gate."""


class ApprovalStep(_SpecModel):
    """Wait for a person's ``approve`` (or ``promote``)."""

    timeout: Duration | None = None
    """How long to wait; default: forever."""
    on_timeout: Literal["abort", "pause"] = "abort"
    """What a timeout does: ``abort`` rolls back (type ``ApprovalTimedOut``); ``pause`` holds the
    rollout for a person (pause reason ``ApprovalTimedOut``) and the gate still needs its approvals."""
    policy: ApprovalPolicy | None = None
    """This gate's own policy, replacing the spec's ``approvalPolicy``."""


class ApprovalRules(_Model):
    """The policies a rollout's gates apply, by plan step, and who requested it."""

    requested_by: str | None = None
    default: ApprovalPolicy = ANYONE
    """The spec's ``approvalPolicy``: gates without their own, and ``promote`` away from a gate."""
    gates: dict[int, ApprovalPolicy] = Field(default_factory=dict)
    """Gates with their own policy, by plan step index."""

    def at(self, step: int | None) -> ApprovalPolicy:
        """The policy of the gate at plan ``step`` (None: not at a gate, the spec's policy)."""
        return self.gates.get(step, self.default) if step is not None else self.default

    def problems(self) -> list[str]:
        """Spec problems of every policy, each named by its path (``steps[3]`` is plan step 4)."""
        found = self.default.problems("approvalPolicy", self.requested_by)
        for step, policy in sorted(self.gates.items()):
            found += policy.problems(f"steps[{step - 1}].approval.policy", self.requested_by)
        return found


class Approval(Protocol):
    """An approval already recorded at a gate (``ApprovalRecord`` is one)."""

    @property
    def by(self) -> str: ...
    @property
    def step(self) -> int: ...


def distinct_approvers(approvals: Sequence[Approval]) -> list[str]:
    """Who approved, each once, in the order they first did."""
    return list(dict.fromkeys(approval.by for approval in approvals))


def still_needed(policy: ApprovalPolicy, approvals: Sequence[Approval]) -> int:
    """Distinct approvals the gate still needs (0: it may pass)."""
    return max(0, policy.required - len(distinct_approvers(approvals)))


def _more_needed(count: int) -> str:
    return f"{count} more distinct approver{'' if count == 1 else 's'} needed"


def approver_refusal(
    policy: ApprovalPolicy, by: str, requested_by: str | None, approvals_so_far_at_gate: Sequence[Approval]
) -> str | None:
    """Why ``by`` may not approve under ``policy`` (None: they may), naming the rule.

    ``approvals_so_far_at_gate``: the approvals recorded at this gate (empty away from a gate,
    where only who may approve is checked)."""
    if not policy.allows(by):
        return f"{by} may not approve (approvers: {', '.join(policy.approvers or [])})"
    if requested_by is not None and by == requested_by and not policy.allow_requester:
        return f"{by} requested this rollout and may not approve it (allowRequester: false)"
    if by in distinct_approvers(approvals_so_far_at_gate):
        step = approvals_so_far_at_gate[0].step
        needed = still_needed(policy, approvals_so_far_at_gate)
        tail = _more_needed(needed) if needed else "the gate has its approvals"
        return f"{by} already approved step {step}; {tail}"
    return None


def progress_answer(step: int, by: str, policy: ApprovalPolicy, approvals: Sequence[Approval]) -> str:
    """What an accepted approval answers: ``step 2 approved by alice`` when one approval passes
    the gate, else how far the gate is (``step 2: approval 1 of 2 by alice; 1 more ...``)."""
    if policy.required == 1:
        return f"step {step} approved by {by}"
    who = distinct_approvers(approvals)
    needed = still_needed(policy, approvals)
    if needed:
        return f"step {step}: approval {len(who)} of {policy.required} by {by}; {_more_needed(needed)}"
    return f"step {step} approved by {', '.join(who)} ({len(who)} of {policy.required})"
