"""The rollout spec: what a user writes (camelCase JSON or YAML) and how it is validated.

Every model refuses unknown keys, so a misspelt ``setWieght`` is an error that names it instead of
a silently ignored line. :func:`validate_spec` turns pydantic's errors into one line per problem,
each starting with the path of the field (``steps[0].setWeight: must be 0..100, got 150``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from workflows._base import _SpecModel
from workflows._durations import Duration, RequestTimeout
from workflows._fields import DnsName, HttpUrl, Label, Weight
from workflows.analysis import AnalysisSpec
from workflows.approval_policy import ANYONE, ApprovalPolicy, ApprovalRules, ApprovalStep, PersonName
from workflows.notify_spec import NotifySinks, notify_problems
from workflows.routers import (
    ROUTER_KINDS,
    ROUTER_SPECS,
    Destination,
    DryRunRouterSpec,
    EnvoyRouterSpec,
    GatewayApiRouterSpec,
    IstioRouterSpec,
    RouterSpec,
    RouterSpecBase,
    RouterTraits,
    kinds_with,
)
from workflows.split_test import split_check_problems
from workflows.validation import (
    ArgumentsError,
    SpecError,
    bounded_problems,
    validation_problems,
)
from workflows.windows import Blackouts, Windows

__all__ = [
    "DEFAULT_STEPS",
    "ROUTER_KINDS",
    "ROUTER_SPECS",
    "ApprovalPolicy",
    "ApprovalStep",
    "ArgumentsError",
    "Destination",
    "DryRunRouterSpec",
    "EnvoyRouterSpec",
    "GatewayApiRouterSpec",
    "IstioRouterSpec",
    "PauseStep",
    "RemoveOldStep",
    "RolloutSpec",
    "RouterSpec",
    "RouterSpecBase",
    "RouterTraits",
    "SpecError",
    "Step",
    "VerifySpec",
    "validate_new_spec",
    "validate_spec",
    "validation_problems",
    "workflow_id_for",
]


class PauseStep(_SpecModel):
    """Hold at the current weights: for ``duration`` (a bake), or until ``resume``/``promote``."""

    duration: Duration | None = None


class RemoveOldStep(_SpecModel):
    """Send 100% to the canary alone; optionally retire the old Deployment (Kubernetes)."""

    deployment: DnsName | None = None
    action: Literal["scaleToZero", "delete"] = "scaleToZero"
    delay: Duration = timedelta(seconds=30)


_STEP_KINDS = (
    ("set_weight", "setWeight"),
    ("approval", "approval"),
    ("pause", "pause"),
    ("remove_old", "removeOld"),
)
"""Each step field and its kind as the spec spells it (read on every step of every run)."""


class Step(_SpecModel):
    """One step of the plan: exactly one of ``setWeight``, ``approval``, ``pause``, ``removeOld``."""

    set_weight: Weight | None = None
    approval: ApprovalStep | None = None
    pause: PauseStep | None = None
    remove_old: RemoveOldStep | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict):
            set_keys = [key for key, value in data.items() if value is not None]
            if len(set_keys) > 1:
                raise ValueError(f"a step has exactly one kind, got {', '.join(set_keys)}")
            if not data:
                raise ValueError(
                    "a step needs one of setWeight, approval, pause, removeOld, got an empty step"
                )
        elif data is not None:
            raise ValueError(
                f"a step is a mapping like {{setWeight: 10}} or {{approval: {{}}}}, got {data!r}"
            )
        return data

    @field_validator("set_weight", "approval", "pause", "remove_old", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # A null kind would pass as absent and leave the plan a step of no kind.
        if value is None:
            raise ValueError("must not be null (e.g. setWeight: 10, approval: {}), got null")
        return value

    @property
    def kind(self) -> str:
        """The step's kind as the spec spells it."""
        for name, kind in _STEP_KINDS:
            if getattr(self, name) is not None:
                return kind
        raise AssertionError("validated step has no kind")


DEFAULT_STEPS: tuple[dict[str, Any], ...] = (
    {"setWeight": 10},
    {"approval": {}},
    {"setWeight": 50},
    {"approval": {}},
    {"setWeight": 100},
    {"approval": {}},
    {"removeOld": {}},
)


class VerifySpec(_SpecModel):
    """After every traffic change, sample live traffic and test the served split."""

    url: HttpUrl
    samples: int = Field(default=200, ge=10, le=100_000)
    match: str | None = None
    """Regex over the body; group 1 (or the whole match) names the version."""
    header: str | None = None
    """Response header naming the version (e.g. ``x-version``)."""
    stable_value: str | None = None
    """What ``match``/``header`` yields for stable; default: the stable host."""
    canary_value: str | None = None
    """What ``match``/``header`` yields for the canary; default: the canary host."""
    alpha: float = Field(default=0.001, gt=0, lt=0.5)
    """Significance of the split test: a correctly served split fails with at most this chance."""
    concurrency: int = Field(default=10, ge=1, le=200)
    request_timeout: RequestTimeout = timedelta(seconds=5)
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers (e.g. ``Host``); never secrets, the spec is stored in history."""

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a valid regular expression ({exc}), got {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _one_classifier(self) -> VerifySpec:
        if (self.match is None) == (self.header is None):
            raise ValueError("set exactly one of match (a regex over the body) or header")
        return self


class RolloutSpec(_SpecModel):
    """A rollout: which service, which router, which destinations, which steps."""

    service: Label
    namespace: Label = "default"
    router: RouterSpec
    stable: Destination
    canary: Destination
    steps: list[Step] = Field(default_factory=lambda: [Step.model_validate(s) for s in DEFAULT_STEPS])
    verify: VerifySpec | None = None
    analysis: AnalysisSpec | None = None
    """Metrics measured from the first traffic change to the end; a failure rolls back."""
    on_route_busy: Literal["fail", "wait"] = "fail"
    """When another running rollout owns the route: fail at once (``RouteBusy``, no traffic
    touched) or wait until it is free."""
    requested_by: PersonName | None = None
    """Who asked for this rollout (recorded in status; ``approvalPolicy.allowRequester``)."""
    approval_policy: ApprovalPolicy | None = None
    """Who may pass the approval gates (a gate's ``approval.policy`` replaces it)."""

    def approval_rules(self) -> ApprovalRules:
        """The policy of every gate, by plan step, as the message rules apply it."""
        policies = [(n, s.approval.policy if s.approval else None) for n, s in enumerate(self.steps, 1)]
        gates = {n: policy for n, policy in policies if policy is not None}
        default = self.approval_policy or ANYONE
        return ApprovalRules(requested_by=self.requested_by, default=default, gates=gates)

    windows: Windows | None = None
    """When traffic may move forward (:mod:`workflows.windows`); omitted: any time."""
    blackouts: Blackouts = Field(default_factory=list)
    """When it may not, whatever the windows say."""

    notify: NotifySinks = Field(default_factory=list)
    """Webhooks told about the rollout's events (see :mod:`workflows.notify_spec`)."""

    def checks_canary_readiness(self) -> bool:
        """Whether the canary must prove it can serve before its first traffic: its Deployment
        (Kubernetes routers, ``canary.deployment``) or its Envoy cluster's health (``router.admin``)."""
        if self.canary.deployment is not None:
            return True
        envoy = isinstance(self.router, EnvoyRouterSpec) and self.router.admin is not None
        return envoy and self.canary.wait_healthy

    def _readiness_problems(self) -> list[str]:
        keys = (
            ("deployment", self.stable.deployment),
            ("waitHealthy", self.stable.wait_healthy or None),
            ("readyTimeout", self.stable.ready_timeout),
        )
        problems = [f"stable.{key}: only the canary is checked for readiness" for key, value in keys if value]
        if self.canary.wait_healthy and not (isinstance(self.router, EnvoyRouterSpec) and self.router.admin):
            problems.append("canary.waitHealthy: only the envoy router with router.admin can see its health")
        if self.canary.deployment is not None and not self.router.traits.kubernetes:
            problems.append(
                f"canary.deployment: only the {kinds_with('kubernetes')} router checks a Deployment "
                "(envoy checks its canary cluster's health through router.admin)"
            )
        elif self.canary.ready_timeout is not None and not self.checks_canary_readiness():
            problems.append(
                "canary.readyTimeout: nothing to wait for "
                "(set canary.deployment, or canary.waitHealthy for envoy)"
            )
        return problems

    def start_problems(self) -> list[str]:
        """What a new rollout is refused for, beyond the model's own rules: a ``setWeight`` whose
        split check could never fail (see :func:`workflows.split_test.split_check_problems`).
        A rollout already running keeps the rules it started under, so this is not a validator."""
        if self.verify is None:
            return []
        weights = [(n, s.set_weight) for n, s in enumerate(self.steps) if s.set_weight is not None]
        return split_check_problems(weights, self.verify.samples, self.verify.alpha)

    def route_identity(self) -> str:
        """The route this rollout drives, as ownership knows it (``envoy:/path#reviews//``)."""
        return self.router.route_identity(self.namespace, self.service)

    @model_validator(mode="after")
    def _consistent(self) -> RolloutSpec:
        problems: list[str] = []
        if self.stable == self.canary:
            problems.append(f"canary: must differ from stable (both {self.stable.label()})")
        kind, traits = self.router.kind, self.router.traits
        for role in ("stable", "canary"):
            dest: Destination = getattr(self, role)
            if dest.subset is not None and not traits.subsets:
                problems.append(f"{role}.subset: only the {kinds_with('subsets')} router has subsets")
            if dest.port is not None and not traits.ports:
                problems.append(f"{role}.port: only the {kinds_with('ports')} router takes a port")
        problems.extend(self._readiness_problems())
        problems.extend(self.approval_rules().problems())
        if not self.steps:
            problems.append("steps: needs at least one step (omit it for the default plan)")
        for index, step in enumerate(self.steps):
            if step.remove_old is None:
                continue
            if index != len(self.steps) - 1:
                problems.append(f"steps[{index}].removeOld: must be the last step")
            previous = [s.set_weight for s in self.steps[:index] if s.set_weight is not None]
            if not previous or previous[-1] != 100:
                problems.append(
                    f"steps[{index}].removeOld: the canary must be at 100% first "
                    "(put setWeight: 100 before it)"
                )
            if step.remove_old.deployment is not None and not traits.kubernetes:
                problems.append(
                    f"steps[{index}].removeOld.deployment: needs a Kubernetes router "
                    f"({kinds_with('kubernetes')}), got {kind}"
                )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _notify_consistent(self) -> RolloutSpec:
        problems = notify_problems(self.notify)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def workflow_id(self) -> str:
        """The suggested workflow id, unique per service so two rollouts cannot overlap."""
        return workflow_id_for(self.namespace, self.service)


def workflow_id_for(namespace: str, service: str) -> str:
    """``rollout-<namespace>-<service>``."""
    return f"rollout-{namespace}-{service}"


def validate_spec(data: Any) -> RolloutSpec:
    """Validate a decoded spec (a mapping); raise :class:`SpecError` naming every bad field."""
    if isinstance(data, RolloutSpec):
        return data
    if not isinstance(data, dict):
        raise SpecError([f"spec: must be a mapping of keys to values, got {type(data).__name__}"])
    try:
        return RolloutSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(validation_problems(exc)) from None
    except (ArithmeticError, RecursionError, TypeError, ValueError) as exc:
        # A validator that met a value it did not expect (pydantic passes on everything but
        # ValueError and AssertionError): still a bad spec, never a workflow task failing forever.
        problem = f"spec: cannot be validated ({type(exc).__name__}: {exc})"
        raise SpecError(bounded_problems([problem])) from None


def validate_new_spec(data: Any) -> RolloutSpec:
    """:func:`validate_spec`, then the rules only a rollout about to start must pass
    (:meth:`RolloutSpec.start_problems`)."""
    spec = validate_spec(data)
    problems = spec.start_problems()
    if problems:
        raise SpecError(bounded_problems(problems))
    return spec
