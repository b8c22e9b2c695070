"""Which Envoy route shapes the router drives and which it refuses, on RDS files in ``tmp_path``
(no Envoy: what Envoy serves for these shapes is checked in ``test_envoy_shapes.py``)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.errors import RouteInvalid
from activities.routers import EnvoyRouter
from activities.routers._envoy_split import percent
from workflows.models import Weights
from workflows.spec import Destination, EnvoyRouterSpec

RC_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
V1, V2 = "reviews-v1", "reviews-v2"


def write(path: Path, routes: list[dict[str, Any]], camel: bool = False) -> Path:
    hosts = [{"name": "www", "domains": ["*"], "routes": routes}]
    config = {"@type": RC_TYPE, "name": "reviews", ("virtualHosts" if camel else "virtual_hosts"): hosts}
    document = {("versionInfo" if camel else "version_info"): "1", "resources": [config]}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def router(path: Path, route: str | None = None) -> EnvoyRouter:
    spec = EnvoyRouterSpec(kind="envoy", routes_file=str(path), route_config="reviews", route=route)
    return EnvoyRouter(spec, Destination(host=V1), Destination(host=V2))


def shift(first: str, second: str, numerator: int = 50) -> list[dict[str, Any]]:
    fraction = {"default_value": {"numerator": numerator}, "runtime_key": "shift"}
    return [
        {"name": "a", "match": {"prefix": "/", "runtime_fraction": fraction}, "route": {"cluster": first}},
        {"name": "b", "match": {"prefix": "/"}, "route": {"cluster": second}},
    ]


@pytest.mark.parametrize(
    ("share", "shown"),
    [
        (Fraction(0), 0),
        (Fraction(1, 1000), 1),
        (Fraction(1, 3), 33),
        (Fraction(999, 1000), 99),
        (Fraction(1), 100),
    ],
)
def test_percentages_never_round_traffic_away(share: Fraction, shown: int) -> None:
    assert percent(share) == shown


def test_camel_case_yaml_gets_camel_case_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "routes.yaml", [{"match": {"prefix": "/"}, "route": {"cluster": V1}}], camel=True)
    router(path).set_routes(Weights(stable=90, canary=10))
    document = yaml.safe_load(path.read_text())
    action = document["resources"][0]["virtualHosts"][0]["routes"][0]["route"]
    assert action == {
        "weightedClusters": {"clusters": [{"name": V1, "weight": 90}, {"name": V2, "weight": 10}]}
    }
    assert set(document) == {"versionInfo", "resources"}
    router(path).finalize()
    action = yaml.safe_load(path.read_text())["resources"][0]["virtualHosts"][0]["routes"][0]["route"]
    assert action == {"cluster": V2}


def test_string_weights_stay_strings(tmp_path: Path) -> None:
    weighted = {"clusters": [{"name": V1, "weight": "75"}, {"name": V2, "weight": "25"}]}
    path = write(
        tmp_path / "routes.yaml", [{"match": {"prefix": "/"}, "route": {"weighted_clusters": weighted}}]
    )
    assert (router(path).get_routes().stable, router(path).get_routes().canary) == (75, 25)
    router(path).set_routes(Weights(stable=50, canary=50))
    routes = yaml.safe_load(path.read_text())["resources"][0]["virtual_hosts"][0]["routes"]
    assert routes[0]["route"]["weighted_clusters"]["clusters"] == [
        {"name": V1, "weight": "50"},
        {"name": V2, "weight": "50"},
    ]


def test_a_total_weight_that_cannot_express_the_percentage_is_refused(tmp_path: Path) -> None:
    weighted = {"total_weight": 50, "clusters": [{"name": V1, "weight": 50}, {"name": V2, "weight": 0}]}
    path = write(
        tmp_path / "routes.yaml", [{"match": {"prefix": "/"}, "route": {"weighted_clusters": weighted}}]
    )
    router(path).set_routes(Weights(stable=90, canary=10))  # 45/5 of 50
    text = path.read_text()
    with pytest.raises(
        RouteInvalid, match="33% of reviews-v1 is not a whole weight out of the route's total of 50"
    ):
        router(path).set_routes(Weights(stable=33, canary=67))
    assert path.read_text() == text


def test_the_shift_reads_from_either_of_its_routes(tmp_path: Path) -> None:
    path = write(tmp_path / "routes.yaml", shift(V2, V1, numerator=30))
    for name in (None, "a", "b"):
        state = router(path, route=name).get_routes()
        assert (state.stable, state.canary, state.others) == (70, 30, {})


@pytest.mark.parametrize(
    ("routes", "refusal"),
    [
        (
            shift(V1, "reviews-v0"),
            "shift sends to reviews-v1 and reviews-v0, not to reviews-v1 and reviews-v2",
        ),
        (shift(V1, V2)[:1], "route 'a' takes only a runtime_fraction share"),
        (
            [shift(V1, V2)[0], {"name": "b", "match": {"prefix": "/api"}, "route": {"cluster": V2}}],
            "route 'a' takes only a runtime_fraction share",
        ),
        (
            [
                shift(V1, V2)[0],
                {**shift(V1, V2)[1], "route": {"weighted_clusters": {"clusters": [{"name": V2}]}}},
            ],
            "route 'b' is half of a runtime_fraction traffic shift but does not send to a single cluster",
        ),
    ],
    ids=["other-cluster", "no-second-route", "second-route-other-match", "second-route-weighted"],
)
def test_a_shift_that_cannot_be_driven_is_refused_on_the_first_read(
    tmp_path: Path, routes: list[dict[str, Any]], refusal: str
) -> None:
    path = write(tmp_path / "routes.yaml", routes)
    text = path.read_text()
    with pytest.raises(RouteInvalid, match=refusal):
        router(path).get_routes()
    with pytest.raises(RouteInvalid, match=refusal):
        router(path).set_routes(Weights(stable=100, canary=0))
    assert path.read_text() == text


@pytest.mark.parametrize(
    ("earlier", "refusal"),
    [
        ({"prefix": "/"}, "is never reached: route 'first' before it"),
        ({"prefix": "/api"}, "is never reached: route 'first' before it"),
        (
            {"prefix": "/", "runtime_fraction": {"default_value": {"numerator": 10}}},
            "gets only the requests that route 'first' before it leaves",
        ),
    ],
    ids=["catch-all", "covering-prefix", "fraction-of-a-broader-match"],
)
def test_a_route_behind_a_covering_route_is_refused(
    tmp_path: Path, earlier: dict[str, Any], refusal: str
) -> None:
    routes = [
        {"name": "first", "match": earlier, "route": {"cluster": V1}},
        {"name": "api", "match": {"prefix": "/api/v1"}, "route": {"cluster": V1}},
    ]
    path = write(tmp_path / "routes.yaml", routes)
    with pytest.raises(RouteInvalid, match=refusal):
        router(path, route="api").get_routes()


def test_a_route_behind_narrower_or_different_matches_is_driven(tmp_path: Path) -> None:
    routes = [
        {
            "name": "jason",
            "match": {"prefix": "/", "headers": [{"name": "end-user"}]},
            "route": {"cluster": V2},
        },
        {"name": "static", "match": {"prefix": "/static"}, "route": {"cluster": V1}},
        {"name": "main", "match": {"prefix": "/"}, "route": {"cluster": V1}},
    ]
    path = write(tmp_path / "routes.yaml", routes)
    state = router(path, route="main").set_routes(Weights(stable=80, canary=20))
    assert (state.stable, state.canary) == (80, 20)
