"""The local-stack kit's own promises: backends with faults in a thread or a process, binaries
found or named with an install hint, processes stopped when they never get ready."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from sluice.stack import (
    Backend,
    BackendProcess,
    Delivery,
    Fault,
    ManagedProcess,
    StackError,
    WebhookReceiver,
    find_binary,
    free_port,
    port_open,
)


def statuses(url: str, count: int) -> list[int]:
    with httpx.Client(timeout=5) as client:
        return [client.get(f"{url}/{index}").status_code for index in range(count)]


def test_a_backend_process_takes_its_fault_over_http(tmp_path: Path) -> None:
    with BackendProcess(tmp_path, "reviews-v2") as backend:
        assert statuses(backend.url, 4) == [200] * 4
        backend.set_fault(Fault(error_rate=0.2, status=500, evenly=True))
        assert statuses(backend.url, 10).count(500) == 2  # exactly every fifth
        reported = httpx.get(f"{backend.url}/_fault", timeout=5).json()
        assert reported == {"errorRate": 0.2, "latencyMs": 0.0, "status": 500, "evenly": True}
        refused = httpx.put(f"{backend.url}/_fault", params={"status": "200"}, timeout=5)
        assert refused.status_code == 400
    assert not backend.running() and not port_open(backend.port)
    backend.stop()  # twice is fine


def test_an_in_process_backend_names_its_version_and_counts() -> None:
    backend = Backend("reviews-v1", fault=Fault(error_rate=0.5, evenly=True)).start()
    try:
        answer = httpx.get(backend.url, timeout=5)
        assert answer.headers["x-version"] == "reviews-v1" and answer.text == "reviews-v1\n"
        assert statuses(backend.url, 3) == [503, 200, 503]
        assert backend.requests == 4
    finally:
        backend.stop()


def test_a_backend_never_started_stops_and_frees_its_port() -> None:
    port = free_port()
    Backend("reviews-v1", port).stop()
    Backend("reviews-v1", port).stop()  # the port was released


def test_a_missing_binary_says_how_to_install_it() -> None:
    with pytest.raises(StackError, match=r"prometheus-nowhere is not installed"):
        find_binary("prometheus-nowhere")
    assert find_binary(Path(sys.executable).name) == sys.executable


def test_a_process_that_exits_or_never_gets_ready_is_stopped_and_named(tmp_path: Path) -> None:
    exits = ManagedProcess("quitter", [sys.executable, "-c", "pass"], tmp_path / "quitter.log")
    exits.ready = lambda: False  # type: ignore[method-assign]  # a process that never answers
    with pytest.raises(StackError, match=r"quitter exited \(0\) before ready; see .*quitter.log"):
        exits.start(timeout=10)

    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    sleeper = ManagedProcess("sleeper", sleep, tmp_path / "sleeper.log")
    sleeper.ready = lambda: False  # type: ignore[method-assign]
    with pytest.raises(StackError, match=r"after 0.5s: sleeper not ready"):
        sleeper.start(timeout=0.5)
    assert not sleeper.running() and sleeper.returncode() is not None


def test_the_webhook_receiver_refuses_then_keeps_and_lets_hung_requests_go() -> None:
    kept: list[Delivery] = []
    with WebhookReceiver(failures=[503, 500], on_message=kept.append) as receiver:
        codes = [httpx.post(receiver.url, json={"n": n}).status_code for n in range(3)]
    assert codes == [503, 500, 200]
    assert [d.status for d in receiver.received()] == [503, 500, 200]
    assert [d.body for d in receiver.accepted()] == [{"n": 2}] and kept == receiver.accepted()
    assert receiver.accepted()[0].path == f"/services/{receiver.secret}"

    with WebhookReceiver(hang=True) as hung, pytest.raises(httpx.ReadTimeout):
        httpx.post(hung.url, json={}, timeout=0.5)
    assert [d.status for d in hung.received()] == [None] and hung.accepted() == []
