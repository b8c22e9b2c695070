"""Traffic through the stack: a steady background load, and counting who answers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Self

import httpx

__all__ = ["Load", "sample_versions"]


class Load:
    """A steady trickle of GETs from a thread until :meth:`stop`: ``per_second`` rounds, each one
    request to every URL in turn, so rate windows in the metrics always have data.

    Errors never stop it (Envoy may go away first at teardown): a 5xx or a failed connection
    counts in :attr:`failed`, every request in :attr:`sent`.
    """

    def __init__(self, *urls: str, per_second: float = 30.0) -> None:
        self.urls = urls
        self.period = 1.0 / per_second
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sluice-load", daemon=True)

    def _run(self) -> None:
        next_at = time.monotonic()
        with httpx.Client(timeout=2) as client:
            while not self._stop.is_set():
                for url in self.urls:
                    try:
                        if client.get(url).status_code >= 500:
                            self.failed += 1
                    except httpx.HTTPError:
                        self.failed += 1
                    self.sent += 1
                # A fixed rate, not a fixed gap: a slow answer does not lower the load.
                next_at += self.period
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> Self:
        """Start sending."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sending and wait for the thread; safe to call twice."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sample_versions(url: str, count: int, header: str = "x-version") -> Counter[str]:
    """Send ``count`` GETs and count who answered, by ``header`` (a non-200 answer counts as
    ``"<status>"``). Envoy picks a weighted cluster per request, so keep-alive is fine."""
    seen: Counter[str] = Counter()
    with httpx.Client(timeout=5.0) as client:
        for _ in range(count):
            response = client.get(url)
            if response.status_code != 200:
                seen[f"<{response.status_code}>"] += 1
            else:
                seen[response.headers.get(header, "<none>")] += 1
    return seen
