"""Route shapes taken from upstream Envoy configurations, through the public route activities
(``read_route``, ``set_weights``, ``remove_old_route``) against a real Envoy serving real HTTP.

Every change is checked by sampling what Envoy serves, never by reading the file alone: the
failure this guards against is a router that reports weights Envoy does not serve.

Upstream sources of the shapes:

- Envoy's docs, "Traffic Shifting/Splitting" (``configuration/http/http_conn_man/
  traffic_splitting.rst``): two routes with the same match, the first with ``runtime_fraction``
  (numerator 50 of HUNDRED, runtime key ``routing.traffic_shift.helloworld``), and
  ``weighted_clusters`` with a ``runtime_key_prefix``.
- Gateway API conformance ``httproute-weight``: a third backend at weight 0.
- RDS files written by control planes in proto JSON's lowerCamelCase, with ``totalWeight``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.policy import WorkerPolicy, using_policy
from activities.routes import read_route, remove_old_route, set_weights
from sluice.stack import CANARY, STABLE, Backend, DataPlane, sample_versions, wait_applied
from tests.support.binaries import require_binary
from tests.support.e2e import assert_split
from workflows.models import RemoveOldInput, RouteInput, RouteState, SetWeightsInput, Weights
from workflows.spec import Destination, EnvoyRouterSpec

RC_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
THIRD = "reviews-v3"
SAMPLES = 400


class Shapes:
    """Envoy in front of three backends; each test writes the RDS file it needs."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.path = plane.envoy.routes_file
        self._count = 0

    def install(self, document: dict[str, Any], *, as_json: bool = False) -> Path:
        """Write ``document`` atomically (as JSON: Envoy reads JSON as YAML), served on return."""
        self._count += 1
        version = f"test-{self._count}"
        key = "versionInfo" if "versionInfo" in document else "version_info"
        document = {**document, key: version}
        text = json.dumps(document, indent=2) if as_json else yaml.safe_dump(document, sort_keys=False)
        temp = self.path.with_name(".install.tmp")
        temp.write_text(text)
        os.replace(temp, self.path)
        wait_applied(self.plane.admin_url, version)
        return self.path

    def route(
        self, path: Path, route: str | None = None, stable: str = STABLE, canary: str = CANARY
    ) -> dict[str, Any]:
        spec = EnvoyRouterSpec(
            kind="envoy",
            routes_file=str(path),
            route_config="reviews",
            route=route,
            admin=self.plane.admin_url,
        )
        return {
            "router": spec,
            "namespace": "default",
            "stable": Destination(host=stable),
            "canary": Destination(host=canary),
        }

    def served(self, samples: int = SAMPLES) -> Counter[str]:
        return Counter(sample_versions(self.plane.url, samples))


async def call(activity: Any, request: Any) -> RouteState:
    """One activity call, as a worker allowed to edit the plane's RDS directory runs it."""
    policy = WorkerPolicy(routes_dirs=(Path(request.router.routes_file).parent,))
    with using_policy(policy):
        state: RouteState = await ActivityEnvironment().run(activity, request)
    return state


async def read_then_shift(shapes: Shapes, route: dict[str, Any], was: Weights, to: Weights) -> RouteState:
    """Read the route (it must hold ``was``), move it to ``to`` as a rollout step does, and check
    what Envoy serves."""
    read = await call(read_route, RouteInput(**route))
    assert (read.stable, read.canary, read.others) == (was.stable, was.canary, {})
    state = await call(set_weights, SetWeightsInput(**route, weights=to, expected=was))
    assert (state.stable, state.canary) == (to.stable, to.canary)
    assert_split(shapes.served(), STABLE, CANARY, to.canary)
    return state


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shapes]:
    require_binary("envoy")
    backends = [Backend(STABLE), Backend(CANARY), Backend(THIRD)]
    with DataPlane(tmp_path_factory.mktemp("envoy-shapes"), backends) as plane:
        yield Shapes(plane)


def rds(routes: list[dict[str, Any]], **route_config: Any) -> dict[str, Any]:
    """An RDS document: the ``reviews`` RouteConfiguration with one virtual host of ``routes``."""
    config = {"@type": RC_TYPE, "name": "reviews", **route_config}
    config["virtual_hosts"] = [{"name": "www2", "domains": ["*"], "routes": routes}]
    return {"version_info": "", "resources": [config]}


def docs_traffic_shift(first: str = STABLE, second: str = CANARY) -> list[dict[str, Any]]:
    """Envoy's docs' traffic shift (helloworld_v1/_v2 renamed to the demo's clusters)."""
    return [
        {
            "match": {
                "prefix": "/",
                "runtime_fraction": {
                    "default_value": {"numerator": 50, "denominator": "HUNDRED"},
                    "runtime_key": "routing.traffic_shift.helloworld",
                },
            },
            "route": {"cluster": first},
        },
        {"match": {"prefix": "/"}, "route": {"cluster": second}},
    ]


def runtime(shapes: Shapes, **keys: str) -> None:
    """Set (a value) or remove (``""``) keys in Envoy's admin runtime layer."""
    response = httpx.post(f"{shapes.plane.admin_url}/runtime_modify", params=keys, timeout=5)
    response.raise_for_status()


def camel_case(value: Any) -> Any:
    """``value`` with every key in proto JSON's lowerCamelCase (``virtual_hosts``: ``virtualHosts``)."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): camel_case(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_case(item) for item in value]
    return value


def routes_of(path: Path) -> list[dict[str, Any]]:
    document = yaml.safe_load(path.read_text())  # JSON is YAML
    config = document["resources"][0]
    hosts = config.get("virtual_hosts") or config["virtualHosts"]
    routes: list[dict[str, Any]] = hosts[0]["routes"]
    return routes


# -- 1. the docs' runtime_fraction traffic shift ---------------------------------------------------


@pytest.mark.parametrize("named", [None, "fallback"], ids=["first-route", "second-route-by-name"])
async def test_runtime_fraction_shift_is_driven_by_its_fraction(shapes: Shapes, named: str | None) -> None:
    routes = docs_traffic_shift()
    if named:
        routes[1]["name"] = named
    path = shapes.install(rds(routes))
    route = shapes.route(path, route=named)

    # Step 0 as a rollout runs it: what is reported must be what Envoy serves.
    state = await call(set_weights, SetWeightsInput(**route, weights=Weights(stable=100, canary=0)))
    assert (state.stable, state.canary) == (100, 0)
    assert_split(shapes.served(), STABLE, CANARY, 0)
    await read_then_shift(shapes, route, Weights(stable=100, canary=0), Weights(stable=80, canary=20))
    first, second = routes_of(path)
    fraction = first["match"]["runtime_fraction"]
    assert fraction == {
        "default_value": {"numerator": 80, "denominator": "HUNDRED"},
        "runtime_key": "routing.traffic_shift.helloworld",
    }
    assert first["route"] == {"cluster": STABLE} and second["route"] == {"cluster": CANARY}

    done = await call(remove_old_route, RemoveOldInput(**route, expected=Weights(stable=80, canary=20)))
    assert (done.stable or 0, done.canary) == (0, 100)
    assert_split(shapes.served(), STABLE, CANARY, 100)


async def test_runtime_fraction_with_canary_first_in_camel_case_json(shapes: Shapes) -> None:
    """The same shift with the canary's route first, the fraction in TEN_THOUSANDths, as proto
    JSON's lowerCamelCase: the fraction is the canary's share, and the file keeps its spelling."""
    routes = docs_traffic_shift(first=CANARY, second=STABLE)
    fraction = routes[0]["match"]["runtime_fraction"]
    fraction["default_value"] = {"numerator": 2500, "denominator": "TEN_THOUSAND"}
    document = camel_case(rds(routes))
    path = shapes.install(document, as_json=True)
    route = shapes.route(path)

    await read_then_shift(shapes, route, Weights(stable=75, canary=25), Weights(stable=60, canary=40))
    text = path.read_text()
    assert text.startswith("{")  # still JSON
    assert "_" not in "".join(key for key in _keys(json.loads(text)) if key != "@type")
    assert routes_of(path)[0]["match"]["runtimeFraction"]["defaultValue"] == {
        "numerator": 4000,
        "denominator": "TEN_THOUSAND",
    }


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


@pytest.mark.parametrize(
    "shape",
    ["runtime_fraction", "runtime_key_prefix"],
)
async def test_runtime_override_of_the_route_is_refused_before_any_change(shapes: Shapes, shape: str) -> None:
    """Envoy's runtime overrides the file's default fraction or weights: writing the file would
    not change what Envoy serves, so the change is refused, naming the key, the file untouched."""
    if shape == "runtime_fraction":
        path = shapes.install(rds(docs_traffic_shift()))
        key = "routing.traffic_shift.helloworld"
    else:
        weighted = {
            "runtime_key_prefix": "routing.traffic_split.reviews",
            "clusters": [{"name": STABLE, "weight": 100}, {"name": CANARY, "weight": 0}],
        }
        path = shapes.install(rds([{"match": {"prefix": "/"}, "route": {"weighted_clusters": weighted}}]))
        key = f"routing.traffic_split.reviews.{STABLE}"
    text = path.read_text()
    runtime(shapes, **{key: "10"})
    try:
        with pytest.raises(ApplicationError, match=f"runtime.*{key}") as refused:
            await call(
                set_weights, SetWeightsInput(**shapes.route(path), weights=Weights(stable=100, canary=0))
            )
        assert refused.value.type == "RouteInvalid"
        assert path.read_text() == text
    finally:
        runtime(shapes, **{key: ""})


async def test_a_route_behind_another_with_the_same_match_is_refused(shapes: Shapes) -> None:
    """The named route is never reached: an earlier route matches every request it would."""
    routes = [
        {"name": "first", "match": {"prefix": "/"}, "route": {"cluster": STABLE}},
        {"name": "shadowed", "match": {"prefix": "/"}, "route": {"cluster": STABLE}},
    ]
    path = shapes.install(rds(routes))
    text = path.read_text()
    with pytest.raises(ApplicationError, match=r"shadowed.*never reached.*first") as refused:
        await call(
            set_weights,
            SetWeightsInput(**shapes.route(path, route="shadowed"), weights=Weights(stable=50, canary=50)),
        )
    assert refused.value.type == "RouteInvalid"
    assert path.read_text() == text
    assert_split(shapes.served(100), STABLE, CANARY, 0)


# -- 2. configurations that should work --------------------------------------------------------


async def test_a_third_backend_at_weight_zero_stays_at_zero(shapes: Shapes) -> None:
    """Gateway API conformance's ``httproute-weight`` shape: weight 0 sends nothing."""
    weighted = {
        "clusters": [
            {"name": STABLE, "weight": 100},
            {"name": CANARY, "weight": 0},
            {"name": THIRD, "weight": 0},
        ]
    }
    path = shapes.install(rds([{"match": {"prefix": "/"}, "route": {"weighted_clusters": weighted}}]))
    route = shapes.route(path)

    # read: the third backend is not reported; served: it gets nothing (the split check says so)
    state = await read_then_shift(shapes, route, Weights(stable=100, canary=0), Weights(stable=70, canary=30))
    assert state.others == {}
    clusters = routes_of(path)[0]["route"]["weighted_clusters"]["clusters"]
    assert clusters == [
        {"name": STABLE, "weight": 70},
        {"name": CANARY, "weight": 30},
        {"name": THIRD, "weight": 0},
    ]

    done = await call(remove_old_route, RemoveOldInput(**route, expected=Weights(stable=70, canary=30)))
    assert (done.stable, done.canary, done.others) == (None, 100, {})
    assert_split(shapes.served(100), STABLE, CANARY, 100)


async def test_a_third_backend_taking_traffic_is_still_refused(shapes: Shapes) -> None:
    weighted = {"clusters": [{"name": STABLE, "weight": 90}, {"name": THIRD, "weight": 10}]}
    path = shapes.install(rds([{"match": {"prefix": "/"}, "route": {"weighted_clusters": weighted}}]))
    text = path.read_text()
    with pytest.raises(ApplicationError, match=f"also sends to {THIRD}"):
        await call(set_weights, SetWeightsInput(**shapes.route(path), weights=Weights(stable=100, canary=0)))
    assert path.read_text() == text


async def test_camel_case_json_with_total_weight_keeps_its_spelling_and_scale(shapes: Shapes) -> None:
    """As control planes write RDS: lowerCamelCase proto JSON, weights out of ``totalWeight``."""
    document = {
        "versionInfo": "",
        "resources": [
            {
                "@type": RC_TYPE,
                "name": "reviews",
                "virtualHosts": [
                    {
                        "name": "reviews",
                        "domains": ["*"],
                        "routes": [
                            {
                                "match": {"prefix": "/"},
                                "route": {
                                    "timeout": "5s",
                                    "weightedClusters": {
                                        "totalWeight": 10000,
                                        "clusters": [
                                            {"name": STABLE, "weight": 5000},
                                            {"name": CANARY, "weight": 5000},
                                        ],
                                    },
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    path = shapes.install(document, as_json=True)
    route = shapes.route(path)

    state = await read_then_shift(shapes, route, Weights(stable=50, canary=50), Weights(stable=90, canary=10))

    after = json.loads(path.read_text())  # still JSON
    assert set(after) == {"versionInfo", "resources"} and after["versionInfo"] == state.version
    action = after["resources"][0]["virtualHosts"][0]["routes"][0]["route"]
    assert action == {
        "timeout": "5s",
        "weightedClusters": {
            "totalWeight": 10000,
            "clusters": [{"name": STABLE, "weight": 9000}, {"name": CANARY, "weight": 1000}],
        },
    }


async def test_yaml_weights_out_of_a_thousand_without_total_weight(shapes: Shapes) -> None:
    """Envoy 1.40 deprecates ``total_weight``: weights are shares of their sum, whatever it is."""
    weighted = {"clusters": [{"name": STABLE, "weight": 750}, {"name": CANARY, "weight": 250}]}
    path = shapes.install(rds([{"match": {"prefix": "/"}, "route": {"weighted_clusters": weighted}}]))
    route = shapes.route(path)
    assert_split(shapes.served(), STABLE, CANARY, 25)
    await read_then_shift(shapes, route, Weights(stable=75, canary=25), Weights(stable=40, canary=60))
    assert routes_of(path)[0]["route"]["weighted_clusters"]["clusters"] == [
        {"name": STABLE, "weight": 400},
        {"name": CANARY, "weight": 600},
    ]


# -- 4. Envoy refuses the file -------------------------------------------------------------------


async def test_a_file_envoy_rejects_is_put_back_and_the_change_fails_with_the_cluster(shapes: Shapes) -> None:
    """``validate_clusters`` and a canary cluster Envoy does not know: Envoy keeps the old route
    and counts a rejected update; the router puts the previous file back and fails at once,
    not retried, naming the cluster."""
    document = rds(
        [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": STABLE}}],
        validate_clusters=True,
    )
    path = shapes.install(document)
    text = path.read_text()
    route = shapes.route(path, canary="reviews-v9")

    started = time.monotonic()
    with pytest.raises(ApplicationError, match="reviews-v9") as rejected:
        await call(set_weights, SetWeightsInput(**route, weights=Weights(stable=80, canary=20)))
    assert rejected.value.type == "RouteRejected" and rejected.value.non_retryable
    assert time.monotonic() - started < 5
    assert path.read_text() == text  # the previous file is back
    assert_split(shapes.served(100), STABLE, CANARY, 0)

    # The rollback's change (100% stable) serves what Envoy already serves: it succeeds, and the
    # file Envoy refused does not stay on disk.
    back = await call(set_weights, SetWeightsInput(**route, weights=Weights(stable=100, canary=0)))
    assert (back.stable, back.canary) == (100, None)  # what the file back on disk says
    assert path.read_text() == text
