"""Spec validation: every problem named by its path, in the user's spelling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from workflows._durations import format_duration, parse_duration
from workflows.spec import (
    ROUTER_KINDS,
    ROUTER_SPECS,
    RouterTraits,
    SpecError,
    validate_new_spec,
    validate_spec,
)
from workflows.validation import MAX_PROBLEM_LENGTH, MAX_PROBLEMS


def base(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "service": "reviews",
        "router": {"kind": "envoy", "routesFile": "/tmp/rds.yaml", "routeConfig": "reviews"},
        "stable": {"host": "reviews-v1"},
        "canary": {"host": "reviews-v2"},
    }
    spec.update(changes)
    return spec


def test_defaults() -> None:
    spec = validate_spec(base())
    assert spec.namespace == "default"
    assert spec.workflow_id == "rollout-default-reviews"
    assert [step.kind for step in spec.steps] == [
        "setWeight", "approval", "setWeight", "approval", "setWeight", "approval", "removeOld",
    ]  # fmt: skip
    assert [step.set_weight for step in spec.steps if step.set_weight is not None] == [10, 50, 100]
    assert spec.verify is None and spec.analysis is None


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"steps": [{"setWeight": 150}]}, "steps[0].setWeight: must be 0..100, got 150"),
        ({"steps": [{"setWeight": "10"}]}, "steps[0].setWeight: Input should be a valid integer, got '10'"),
        ({"steps": [{"setWieght": 10}]}, "steps[0].setWieght: unknown step kind"),
        ({"steps": [{"setWeight": 10, "approval": {}}]}, "steps[0]: a step has exactly one kind"),
        ({"steps": []}, "steps: needs at least one step"),
        (
            {"steps": [{"setWeight": 50}, {"removeOld": {}}]},
            "steps[1].removeOld: the canary must be at 100% first",
        ),
        (
            {"steps": [{"setWeight": 100}, {"removeOld": {}}, {"approval": {}}]},
            "steps[1].removeOld: must be the last step",
        ),
        (
            {"steps": [{"pause": {"duration": "10 minutes"}}]},
            "steps[0].pause.duration: must be a duration like 30s",
        ),
        ({"steps": [{"approval": {"timeout": "1h", "onTimeout": "approve"}}]}, "steps[0].approval.onTimeout"),
        ({"router": {"kind": "nginx"}}, "router.kind: unknown router kind 'nginx'"),
        ({"router": {"kind": "envoy", "routeConfig": "reviews"}}, "router.routesFile: required"),
        ({"router": {"kind": "istio"}}, "router.virtualService: required"),
        ({"canary": {"host": "reviews-v1"}}, "canary: must differ from stable (both reviews-v1)"),
        ({"canary": {"host": "reviews", "subset": "v2"}}, "canary.subset: only the istio router has subsets"),
        (
            {"stable": {"host": "reviews-v1", "port": 9080}},
            "stable.port: only the gatewayApi router takes a port",
        ),
        ({"service": "Reviews"}, "service: must be a lowercase DNS label"),
        ({"verfy": {}}, "verfy: unknown key"),
        ({"verify": {"url": "http://x/"}}, "verify: set exactly one of match"),
        (
            {"verify": {"url": "ftp://x/", "header": "x-version"}},
            "verify.url: must be an http:// or https:// URL",
        ),
        (
            {"verify": {"url": "http://x/", "match": "(", "header": None}},
            "verify.match: is not a valid regular expression",
        ),
        (
            {"steps": [{"setWeight": 100}, {"removeOld": {"deployment": "reviews-v1"}}]},
            "steps[1].removeOld.deployment: needs a Kubernetes router",
        ),
        (
            {"steps": [{"setWeight": 100}, {"removeOld": {"deployment": "reviews-v1"}}]},
            "needs a Kubernetes router (istio or gatewayApi), got envoy",
        ),
        (
            {"router": {"kind": "istio", "virtualService": "reviews", "route": 1}},
            "router.route: names an http route (its name); to pick an unnamed route by position use "
            "routeIndex: 1, got 1",
        ),
        (
            {"router": {"kind": "istio", "virtualService": "reviews", "route": "a", "routeIndex": 1}},
            "router: set route (a name) or routeIndex (a position), not both",
        ),
        (
            {"router": {"kind": "istio", "virtualService": "reviews", "routeIndex": -1}},
            "router.routeIndex: Input should be greater than or equal to 0",
        ),
        (
            {"router": {"kind": "gatewayApi", "httpRoute": "reviews", "rule": -1}},
            "router.rule: Input should be",
        ),
    ],
)
def test_invalid_specs_name_the_field(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(base(**changes))
    assert any(problem.startswith(expected) or expected in problem for problem in caught.value.problems), (
        caught.value.problems
    )


def test_router_kinds_and_traits_are_declared_by_the_spec_classes() -> None:
    assert ROUTER_KINDS == ("istio", "gatewayApi", "envoy", "dryRun")
    assert [spec.traits for spec in ROUTER_SPECS] == [
        RouterTraits(subsets=True, kubernetes=True),
        RouterTraits(ports=True, kubernetes=True),
        RouterTraits(),
        RouterTraits(),
    ]
    istio = {"kind": "istio", "virtualService": "reviews"}
    gateway = {"kind": "gatewayApi", "httpRoute": "reviews"}
    deployment = {"steps": [{"setWeight": 100}, {"removeOld": {"deployment": "reviews-v1"}}]}
    assert validate_spec(base(router=istio, canary={"host": "reviews", "subset": "v2"}, **deployment))
    assert validate_spec(base(router=gateway, canary={"host": "reviews-v2", "port": 9080}, **deployment))


def test_route_selectors_and_the_routes_they_claim() -> None:
    """``rule`` and ``route`` may be left out (the router finds the route that sends to the
    stable); ``rule: N`` keeps meaning rule N. Ownership claims what the spec names."""

    def identity(router: dict[str, Any]) -> str:
        return validate_spec(base(router=router)).route_identity()

    gateway = {"kind": "gatewayApi", "httpRoute": "reviews"}
    assert validate_spec(base(router=gateway)).router.rule is None  # type: ignore[union-attr]
    assert identity(gateway) == "gatewayApi:default/httproutes/reviews#"
    assert identity({**gateway, "rule": 0}) == "gatewayApi:default/httproutes/reviews#0"
    istio = {"kind": "istio", "virtualService": "reviews"}
    assert identity(istio) == identity({**istio, "routeIndex": 0}) == "istio:default/virtualservices/reviews#"
    assert identity({**istio, "routeIndex": 1}) == "istio:default/virtualservices/reviews#1"
    assert identity({**istio, "route": "primary"}) == "istio:default/virtualservices/reviews#primary"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(base(steps=[{"setWeight": 150}, {"setWieght": 1}], verfy={}))
    assert len(caught.value.problems) == 3


def test_a_spec_that_is_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="spec: must be a mapping"):
        validate_spec(["service", "reviews"])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86400),
        (45, 45),
        ("PT30S", 30),
        ("1.5s", 1.5),
        ("250ms", 0.25),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["10x", "-5s", -1, True, "", None, float("nan"), "1e3s"])
def test_bad_durations(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1e300, "1e+300"),
        (float("inf"), "inf"),
        (10**20, "100000000000000000000"),
        (10**400, "an integer of about 1e400"),
        ("999999999d", "'999999999d'"),
        ("P99999999D", "'P99999999D'"),
        ("3651d", "'3651d'"),
        ("9" * 500 + "s", "'9999999999999999999...(503 characters)"),
    ],
)
def test_durations_beyond_ten_years_are_refused_with_what_was_given(value: Any, shown: str) -> None:
    # Longer ones overflow datetime arithmetic (now + duration) or Temporal's own durations.
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert str(caught.value) == f"must be at most 3650d, got {shown}"
    assert parse_duration("3650d") == timedelta(days=3650)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"steps": [{"setWeight": None}]}, "steps[0].setWeight: must not be null"),
        ({"steps": [{"setWeight": 10}, {"approval": None}]}, "steps[1].approval: must not be null"),
        ({"steps": [{"setWeight": 10, "pause": None}]}, "steps[0].pause: must not be null"),
        ({"steps": [{"setWeight": 100}, {"removeOld": None}]}, "steps[1].removeOld: must not be null"),
        ({"steps": [{"approval": {"timeout": 1e300}}]}, "steps[0].approval.timeout: must be at most 3650d"),
        ({"steps": [{"pause": {"duration": 10**400}}]}, "steps[0].pause.duration: must be at most 3650d"),
        (
            {"steps": [{"setWeight": 100}, {"removeOld": {"delay": 10**20}}]},
            "steps[1].removeOld.delay: must be at most 3650d, got 100000000000000000000",
        ),
        (
            {"verify": {"url": "http://x/", "header": "x-version", "requestTimeout": "2h"}},
            "verify.requestTimeout: must be at most 1h, got '2h'",
        ),
        (
            {"analysis": {"interval": 1e300, "metrics": []}},
            "analysis.interval: must be at most 3650d, got 1e+300",
        ),
    ],
)
def test_steps_of_no_kind_and_unrepresentable_durations_are_refused(
    changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(base(**changes))
    assert any(problem.startswith(expected) for problem in caught.value.problems), caught.value.problems


def test_problems_are_bounded_in_number_and_length() -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(base(service="x" * 100_000, steps=[{"setWeight": 1000}] * 1000))
    problems = caught.value.problems
    assert len(problems) == MAX_PROBLEMS + 1 and problems[-1] == "... and 981 more problems"
    assert all(len(problem) <= MAX_PROBLEM_LENGTH for problem in problems)
    assert problems[0].startswith("service: must be a lowercase DNS label") and problems[0].endswith("...")


def test_a_validator_that_meets_the_unexpected_still_raises_spec_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pydantic turns only ValueError and AssertionError into validation errors.
    def overflow(data: Any) -> None:
        raise OverflowError("date value out of range")

    monkeypatch.setattr("workflows.spec.RolloutSpec.model_validate", overflow)
    with pytest.raises(
        SpecError, match=r"spec: cannot be validated \(OverflowError: date value out of range\)"
    ):
        validate_spec(base())


def test_durations_print_the_way_users_write_them() -> None:
    assert [format_duration(timedelta(seconds=s)) for s in (30, 600, 7200, 86400, 90)] == [
        "30s",
        "10m",
        "2h",
        "1d",
        "90s",
    ]


# -- a split check that can fail ---------------------------------------------------------------


def verified(steps: list[dict[str, Any]], **verify: Any) -> dict[str, Any]:
    return base(steps=steps, verify={"url": "http://reviews:9080/", "header": "x-version", **verify})


@pytest.mark.parametrize(
    ("steps", "verify", "expected"),
    [
        (
            [{"setWeight": 2}],
            {},
            "steps[0].setWeight: at 2% the split check cannot tell a dead canary from the intended "
            "split with 200 samples at alpha 0.001; needs at least 379 samples (verify.samples)",
        ),
        (
            [{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}],
            {"samples": 10},
            "steps[2].setWeight: at 50% the split check cannot tell a dead canary nor an all-canary "
            "answer from the intended split with 10 samples at alpha 0.001; needs at least 11 samples",
        ),
        (
            [{"setWeight": 99}],
            {},
            "steps[0].setWeight: at 99% the split check cannot tell an all-canary answer from the "
            "intended split with 200 samples at alpha 0.001; needs at least 757 samples",
        ),
    ],
)
def test_a_split_check_that_cannot_fail_is_refused_for_a_new_rollout(
    steps: list[dict[str, Any]], verify: dict[str, Any], expected: str
) -> None:
    data = verified(steps, **verify)
    validate_spec(data)  # a running rollout keeps the rules it started under
    with pytest.raises(SpecError) as caught:
        validate_new_spec(data)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_split_checks_that_can_fail_pass() -> None:
    validate_new_spec(base())  # no verify
    validate_new_spec(verified([{"setWeight": 10}, {"setWeight": 50}, {"setWeight": 100}]))
    validate_new_spec(verified([{"setWeight": 2}], samples=379))
    validate_new_spec(verified([{"setWeight": 0}, {"setWeight": 100}], samples=10))  # exact checks
    # the default plan (10, 50, 100) with the default verify
    validate_new_spec(base(verify={"url": "http://reviews:9080/", "header": "x-version"}))
